/**
 * A graceful restart keeps every shape: a client holding (handle, offset) continues without a
 * 409 and receives the changes committed while Sluice was down.
 */
import { ShapeStream, type Message, type Offset, type Row } from '@electric-sql/client'
import { open } from 'lmdb'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Follower } from './support/follower.js'
import { startTestSluice, type TestSluice } from './support/sluice.js'
import { waitFor } from './support/wait.js'

let sluice: TestSluice

beforeAll(async () => {
  sluice = await startTestSluice()
  await sluice.db.pool.query(`CREATE TABLE notes (id int PRIMARY KEY, body text)`)
  await sluice.db.pool.query(`INSERT INTO notes SELECT g, 'before ' || g FROM generate_series(1, 50) g`)
})

afterAll(async () => {
  await sluice?.close()
})

describe('restart', () => {
  it('resumes clients from their offsets with no refetch and no missed change', async () => {
    const follower = new Follower(() => sluice.shapeUrl(), { table: 'notes' })
    await follower.catchUp()
    await sluice.db.pool.query(`UPDATE notes SET body = 'changed' WHERE id <= 10`)
    await waitFor(async () => {
      await follower.step()
      expect(follower.rows.get('"public"."notes"/"1"')?.['body']).toBe('changed')
    })
    const handle = follower.handle!
    const offset = follower.offset

    await sluice.restart({
      whileDown: async () => {
        await sluice.db.pool.query(`INSERT INTO notes VALUES (100, 'while down')`)
        await sluice.db.pool.query(`DELETE FROM notes WHERE id = 2`)
      },
    })

    // The official client, started from the saved position, must not be told to refetch.
    const seen: Message<Row>[] = []
    const stream = new ShapeStream({ url: sluice.shapeUrl(), params: { table: 'notes' }, handle, offset: offset as Offset })
    stream.subscribe((messages) => void seen.push(...messages))
    await waitFor(() => {
      const ops = seen.flatMap((m) => ('key' in m ? [`${String(m.headers.operation)} ${m.key}`] : []))
      expect(ops).toEqual(['insert "public"."notes"/"100"', 'delete "public"."notes"/"2"'])
    })
    expect(seen.some((m) => m.headers['control'] === 'must-refetch')).toBe(false)
    expect(stream.shapeHandle).toBe(handle)
    stream.unsubscribeAll()

    await follower.catchUp()
    expect(follower.refetches).toBe(0)
    expect(follower.handle).toBe(handle)
    const expected = await sluice.db.pool.query<{ id: string; body: string }>(`SELECT id::text, body FROM notes ORDER BY notes.id`)
    expect([...follower.rows.values()].sort((a, b) => Number(a['id']) - Number(b['id']))).toEqual(expected.rows)
  })
})

/**
 * Found by the soak (issue 14, seed 1805309164): a table dropped and created again while Sluice
 * was down, or a column added to it, sends no Relation message, and the new table is not even in
 * the publication. Shapes were bound again to the table of the same name at start, so their
 * clients kept the old table's rows and never saw a write to the new one.
 */
describe('restart after a schema change made while Sluice was down', () => {
  it.each([
    ['the table dropped and created again', `DROP TABLE drift; CREATE TABLE drift (id int PRIMARY KEY, v text); INSERT INTO drift VALUES (7, 'new table')`],
    ['a column added', `ALTER TABLE drift ADD COLUMN extra int; INSERT INTO drift VALUES (7, 'new row', 1)`],
  ])('%s: clients get 409 and then the table as it is', async (_, change) => {
    await sluice.db.pool.query(`DROP TABLE IF EXISTS drift; CREATE TABLE drift (id int PRIMARY KEY, v text); INSERT INTO drift VALUES (1, 'old table')`)
    const follower = new Follower(() => sluice.shapeUrl(), { table: 'drift' })
    await follower.catchUp()
    const handle = follower.handle

    await sluice.restart({ whileDown: async () => void (await sluice.db.pool.query(change)) })

    await waitFor(async () => {
      await follower.catchUp()
      const rows = await sluice.db.pool.query<Record<string, string | null>>(`SELECT * FROM drift`)
      expect(follower.sortedRows().map((row) => row['id'])).toEqual(rows.rows.map((row) => String(row['id'])).sort())
    })
    expect(follower.refetches).toBe(1)
    expect(follower.handle).not.toBe(handle)
  })
})

/**
 * A data directory an older Sluice wrote, each record with its own copy of its table, restarts
 * on today's records (docs/ARCHITECTURE.md I33): every shape resumes with its handle, and the copy
 * still tells a table changed while Sluice was down.
 */
describe('restart on records that carry their table inline', () => {
  it('resumes every shape, and one whose table changed while down gets 409', async () => {
    await sluice.db.pool.query(`CREATE TABLE inline_kept (id int PRIMARY KEY, owner int, v text); INSERT INTO inline_kept SELECT g, g % 3, 'v' || g FROM generate_series(1, 30) g`)
    await sluice.db.pool.query(`CREATE TABLE inline_drift (id int PRIMARY KEY, v text); INSERT INTO inline_drift VALUES (1, 'old')`)
    const kept = [
      new Follower(() => sluice.shapeUrl(), { table: 'inline_kept' }),
      ...[0, 1, 2].map((owner) => new Follower(() => sluice.shapeUrl(), { table: 'inline_kept', where: `owner = ${owner}` })),
      new Follower(() => sluice.shapeUrl(), { table: 'inline_kept', columns: 'id,v' }),
    ]
    const drift = new Follower(() => sluice.shapeUrl(), { table: 'inline_drift' })
    for (const follower of [...kept, drift]) await follower.catchUp()
    const handles = kept.map((follower) => follower.handle)

    await sluice.restart({
      whileDown: async () => {
        await asOlderSluiceWroteIt(join(sluice.config.dataDir, 'shapes', 'shapes.lmdb'))
        await sluice.db.pool.query(`UPDATE inline_kept SET v = 'while down' WHERE id IN (1, 2, 3); ALTER TABLE inline_drift ADD COLUMN extra int`)
      },
    })

    const expected = await sluice.db.pool.query<{ id: string; owner: string; v: string }>(`SELECT id::text, owner::text, v FROM inline_kept ORDER BY inline_kept.id`)
    const rowsOf = (follower: Follower) => [...follower.rows.values()].sort((a, b) => Number(a['id']) - Number(b['id']))
    await waitFor(async () => {
      for (const follower of kept) await follower.catchUp()
      expect(rowsOf(kept[0]!)).toEqual(expected.rows)
      for (const owner of [0, 1, 2]) expect(rowsOf(kept[owner + 1]!)).toEqual(expected.rows.filter((row) => row.owner === String(owner)))
      expect(rowsOf(kept[4]!)).toEqual(expected.rows.map(({ id, v }) => ({ id, v })))
    })
    expect(kept.map((follower) => follower.refetches)).toEqual([0, 0, 0, 0, 0])
    expect(kept.map((follower) => follower.handle)).toEqual(handles)
    await drift.catchUp()
    expect(drift.refetches).toBe(1)
  })
})

/**
 * Rewrites a stopped Sluice's records as an older one wrote them: each with its table inline, and
 * no table descriptions (this encoder is kept only here).
 */
async function asOlderSluiceWroteIt(path: string): Promise<void> {
  const root = open({ path, maxDbs: 8 })
  try {
    const shapes = root.openDB<Record<string, unknown>, number>({ name: 'shapes', keyEncoding: 'uint32', encoding: 'json' })
    const tables = root.openDB<Record<string, unknown>, string>({ name: 'tables', encoding: 'json' })
    const records = [...shapes.getRange()]
    expect(records.length).toBeGreaterThan(0)
    await root.transaction(() => {
      for (const { key, value } of records) {
        const { tableKey, ...rest } = value
        expect(tableKey).toBeDefined()
        shapes.putSync(key, { ...rest, table: tables.get(tableKey as string) })
      }
      for (const key of [...tables.getKeys()]) tables.removeSync(key)
    })
  } finally {
    await root.close()
  }
}
