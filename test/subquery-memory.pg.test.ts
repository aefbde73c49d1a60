/**
 * Changes held for a shape with subqueries are bounded (docs/ARCHITECTURE.md I11, I25): its part
 * of a transaction is kept whole until the commit (old rows are evaluated against the results
 * before it, new rows against those after), so a transaction larger than SLUICE_MAX_HELD_CHANGES
 * ends the shape, and its client refetches to PostgreSQL's answer, instead of growing memory.
 */
import { ShapeStream } from '@electric-sql/client'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTestSluice, type TestSluice } from './support/sluice.js'
import { TaggedRows } from './support/tagged-rows.js'
import { waitFor } from './support/wait.js'

let sluice: TestSluice

const WHERE = `project_id IN (SELECT project_id FROM memberships WHERE user_id = 'u1')`

beforeAll(async () => {
  sluice = await startTestSluice({ maxHeldChanges: 1_000 })
  const q = (sql: string) => sluice.db.pool.query(sql)
  await q(`CREATE TABLE tasks (id int PRIMARY KEY, project_id int NOT NULL)`)
  await q(`CREATE TABLE memberships (id int PRIMARY KEY, project_id int NOT NULL, user_id text NOT NULL)`)
  await q(`INSERT INTO tasks SELECT i, i % 4 FROM generate_series(1, 20) i`)
  await q(`INSERT INTO memberships VALUES (1, 1, 'u1')`)
})

afterAll(async () => {
  await sluice?.close()
})

describe('a shape with subqueries and a large transaction', () => {
  it('is dropped past SLUICE_MAX_HELD_CHANGES, and its client refetches to the answer', async () => {
    const rows = new TaggedRows()
    const stream = new ShapeStream({ url: sluice.shapeUrl(), params: { table: 'tasks', where: WHERE }, parser: { int4: (v: string) => v } })
    stream.subscribe((messages) => rows.apply(messages))
    await waitFor(() => expect(rows.states.length).toBeGreaterThan(0), 30_000)
    const handle = stream.shapeHandle

    // Tasks of the member's project: only those reach the shape (I29), and there are more than it may hold.
    await sluice.db.pool.query(`INSERT INTO tasks SELECT i, 1 FROM generate_series(1000, 3999) i`)
    const { rows: answer } = await sluice.db.pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM tasks WHERE ${WHERE}`)
    await waitFor(() => expect(rows.rows.size).toBe(answer[0]!.n), 30_000)
    expect(stream.shapeHandle).not.toBe(handle)
    stream.unsubscribeAll()
  })
})
