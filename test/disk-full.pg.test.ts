/**
 * Disk full (issue 14): Sluice's data directory on a tmpfs of its own, filled to the last byte
 * while a large transaction arrives. Sluice exits (exit code 1, one fatal log line that says
 * why), and again after a restart while the disk is still full; once space returns, the restart a
 * supervisor makes loses nothing — clients resume from their offsets with no 409 and end equal
 * to the table, and the slot was never acknowledged past what storage holds.
 * Mounting needs root; elsewhere the suite is skipped with the reason.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { parseLsn } from '../src/pg/lsn.js'
import { DataDisk } from '../soak/data-disk.js'
import { ChildSluice } from './support/child-sluice.js'
import { createTestDatabase, type TestDatabase } from './support/database.js'
import { Follower } from './support/follower.js'
import { waitFor } from './support/wait.js'

const root = await mkdtemp(join(tmpdir(), 'sluice-disk-full-'))
const mounted = await DataDisk.mount(join(root, 'data'), 64)
const disk = typeof mounted === 'string' ? undefined : mounted
if (!disk) console.warn(`test/disk-full.pg.test.ts skipped: ${mounted}`)

let db: TestDatabase
let sluice: ChildSluice
const slot = `disk_full_${process.pid}`

beforeAll(async () => {
  if (!disk) return
  db = await createTestDatabase()
  await db.pool.query(`CREATE TABLE items (id int PRIMARY KEY, payload text NOT NULL)`)
  await db.pool.query(`INSERT INTO items SELECT g, md5(g::text) FROM generate_series(1, 1000) g`)
  sluice = new ChildSluice({ DATABASE_URL: db.url, SLUICE_DATA_DIR: join(disk.dir, 'sluice'), SLUICE_REPLICATION_SLOT: slot, SLUICE_PUBLICATION: slot })
}, 120_000)

afterAll(async () => {
  await sluice?.kill()
  await disk?.unmount()
  await db?.drop()
  await rm(root, { recursive: true, force: true })
})

/**
 * How Sluice ended, as the test expects it: exit code 1, or SIGKILL from its watchdog when exiting
 * would wait on lmdb's write thread (src/server.ts storageFailed): to an operator, the same stop.
 */
function stopped(code: number | null, signal: NodeJS.Signals | null): { code: number | null } {
  return { code: signal === 'SIGKILL' ? 1 : code }
}

describe.skipIf(!disk)('data disk full', () => {
  it('exits with a clear log line, and a restart once space returns loses nothing', async () => {
    let exit: { code: number | null } | undefined
    sluice.onExit = (code, signal) => void (exit = stopped(code, signal))
    await sluice.start()
    const follower = new Follower(() => sluice.shapeUrl, { table: 'items' })
    await follower.catchUp()

    await disk!.fill()
    // Far more than the few pages LMDB has free: the commit of this transaction cannot be written.
    await db.pool.query(`INSERT INTO items SELECT g, repeat(md5(g::text), 4) FROM generate_series(1001, 40000) g`)
    await waitFor(() => expect(exit).toEqual({ code: 1 }), 60_000, 50)
    const fatalLine = sluice.output.split('\n').find((line) => line.includes('"level":60'))
    expect(fatalLine, `no fatal line; the output ended with:\n${sluice.output.slice(-3000)}`).toBeDefined()
    const fatal = JSON.parse(fatalLine!) as { msg: string; freeBytes: number; err: { message: string } }
    console.info(`disk full: ${JSON.stringify(fatal)}`)
    expect(fatal.msg).toMatch(/^writing shape logs failed \(disk full or I\/O error\?\): Sluice stops/)
    expect(fatal.freeBytes).toBeLessThan(1024 * 1024)
    // lmdb reports a full disk as ENOSPC or, writing through its file map, as EIO.
    expect(fatal.err.message).toMatch(/^LMDB commit failed: (No space left on device|Input\/output error)/)

    // A supervisor's restart while the disk is still full ends the same way, at the first write
    // that needs space (opening the store may not need any, so the start itself may succeed).
    exit = undefined
    await sluice.start(20_000).catch(() => undefined)
    await waitFor(() => expect(exit).toEqual({ code: 1 }), 60_000, 50)

    await disk!.free()
    await db.pool.query(`UPDATE items SET payload = 'after' WHERE id <= 10`)
    await sluice.start()
    await waitFor(async () => {
      await follower.catchUp()
      expect(follower.rows.size).toBe(40_000)
      expect(follower.rows.get('"public"."items"/"10"')?.['payload']).toBe('after')
    }, 60_000, 200)
    expect(follower.refetches).toBe(0)
    expect(new Set(follower.changeIds).size).toBe(follower.changeIds.length)
    const { rows } = await db.pool.query<{ id: string; payload: string }>(`SELECT id::text, payload FROM items`)
    for (const row of rows) expect(follower.rows.get(`"public"."items"/"${row.id}"`)).toEqual(row)
    const flushed = await db.pool.query<{ lsn: string }>(`SELECT confirmed_flush_lsn::text AS lsn FROM pg_replication_slots WHERE slot_name = $1`, [slot])
    const metrics = await (await fetch(`${sluice.baseUrl}/metrics`)).text()
    expect(Number(parseLsn(flushed.rows[0]!.lsn))).toBeLessThanOrEqual(Number(/^sluice_durable_lsn ([0-9.e+]+)$/m.exec(metrics)![1]))
  }, 180_000)
})
