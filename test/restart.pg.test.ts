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
