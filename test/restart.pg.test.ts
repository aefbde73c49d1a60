/**
 * A graceful restart keeps every shape: a client holding (handle, offset) continues without a
 * 409 and receives the changes committed while Sluice was down.
 */
import { ShapeStream, type Message, type Offset, type Row } from '@electric-sql/client'
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
