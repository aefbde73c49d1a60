/**
 * A garbled replication stream is never applied (issue 18). On main, a proxy between Sluice and
 * PostgreSQL that changed bytes of pgoutput messages made Sluice apply what came through (a
 * filtered follower ended with more rows than the table had) or throw inside the socket
 * handler. Here every kind of corruption of `pgoutput-proxy.ts` hits the replication
 * connection while writers run; Sluice must log each violation, reconnect from its durable LSN,
 * and every follower must end equal to the table without a refetch.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { pino } from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadConfig } from '../src/config.js'
import { startSluice, type SluiceServer } from '../src/server.js'
import { createTestDatabase, type TestDatabase } from './support/database.js'
import { Follower } from './support/follower.js'
import { CORRUPTIONS, startPgoutputProxy, type PgoutputProxy } from './support/pgoutput-proxy.js'
import { waitFor } from './support/wait.js'

let db: TestDatabase
let proxy: PgoutputProxy
let sluice: SluiceServer
let dataDir: string
const violations: { violation: string; message: unknown }[] = []

beforeAll(async () => {
  db = await createTestDatabase()
  await db.pool.query(`CREATE TABLE items (id int PRIMARY KEY, v int NOT NULL, note text)`)
  await db.pool.query(`INSERT INTO items SELECT g, g % 100, 'row ' || g FROM generate_series(1, 300) g`)
  const target = new URL(db.url)
  proxy = await startPgoutputProxy({ host: target.hostname, port: Number(target.port) })
  const throughProxy = new URL(db.url)
  throughProxy.port = String(proxy.port)
  dataDir = await mkdtemp(join(tmpdir(), 'sluice-integrity-'))
  const capture = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n').filter(Boolean)) {
        const entry = JSON.parse(line) as { violation?: string; message?: unknown }
        if (entry.violation) violations.push({ violation: entry.violation, message: entry.message })
      }
      done()
    },
  })
  sluice = await startSluice(
    { ...loadConfig({}), port: 0, host: '127.0.0.1', dataDir, databaseUrl: throughProxy.toString(), replicationSlot: `integrity_${process.pid}`, publication: 'integrity' },
    pino({ level: 'warn' }, capture),
  )
})

afterAll(async () => {
  await sluice?.stop()
  await proxy?.close()
  await db?.drop()
  if (dataDir) await rm(dataDir, { recursive: true, force: true })
})

/** Transactions of inserts, updates and deletes until stopped. */
function startWriters(): { stop(): Promise<void> } {
  let stopped = false
  const running = (async () => {
    let next = 1_000
    while (!stopped) {
      const id = next++
      await db.pool.query(
        `WITH a AS (INSERT INTO items VALUES ($1, $1 % 100, 'row ' || $1)),
              b AS (UPDATE items SET v = (v + 7) % 100, note = note || '+' WHERE id = $2)
         DELETE FROM items WHERE id = $3`,
        [id, 1 + (id % 300), id - 40],
      )
    }
  })()
  return {
    async stop() {
      stopped = true
      await running
    },
  }
}

async function expectEqualToTable(follower: Follower, where: string): Promise<void> {
  await waitFor(async () => {
    await follower.catchUp()
    const { rows } = await db.pool.query<{ id: string; v: string; note: string }>(`SELECT id::text, v::text, note FROM items WHERE ${where} ORDER BY id`)
    expect(follower.rows.size).toBe(rows.length)
    for (const row of rows) expect(follower.rows.get(`"public"."items"/"${row.id}"`)).toEqual(row)
  }, 60_000, 200)
}

describe('a replication stream garbled between PostgreSQL and Sluice', () => {
  it('is never applied: every corruption is logged, the stream resumes, followers stay equal to the table', async () => {
    const shapeUrl = () => `${sluice.url}/v1/shape`
    const all = new Follower(shapeUrl, { table: 'items' })
    const filtered = new Follower(shapeUrl, { table: 'items', where: 'v >= 50' })
    await all.catchUp()
    await filtered.catchUp()

    const writers = startWriters()
    try {
      proxy.corrupt({ perKind: 2, every: 20, seed: 18 })
      await waitFor(() => expect(proxy.done()).toBe(true), 120_000, 100)
    } finally {
      await writers.stop()
    }
    await expectEqualToTable(all, 'true')
    await expectEqualToTable(filtered, 'v >= 50')
    expect(all.refetches).toBe(0)
    expect(filtered.refetches).toBe(0)
    expect(new Set(all.changeIds).size).toBe(all.changeIds.length)

    // Each corruption that breaks a rule was seen and said so (a Begin sent after a Relation
    // message, harmless, is the one that may pass unnoticed).
    expect(Object.values(proxy.applied)).toEqual(CORRUPTIONS.map(() => 2))
    const seen = violations.map((v) => v.violation).join('\n')
    expect(violations.length, seen).toBeGreaterThanOrEqual(2 * CORRUPTIONS.length - proxy.applied['begin-swap'])
    expect(seen).toMatch(/undecodable message/)
    expect(seen).toMatch(/unknown CopyData frame 0x78/)
    expect(seen).toMatch(/commit LSN went backwards/)
    expect(seen).toMatch(/outside a transaction/)
    expect(seen).toMatch(/columns for a relation of 3|which no Relation message described/)
  })
})
