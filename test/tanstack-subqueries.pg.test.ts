/**
 * TanStack DB's electric collection following shapes with subqueries through moves: its tag
 * index must keep exactly PostgreSQL's rows when memberships come and go (move-in, move-out),
 * when a task moves between projects, and when a row held by two reasons loses one (OR).
 */
import { createCollection, type Collection } from '@tanstack/db'
import { electricCollectionOptions } from '@tanstack/electric-db-collection'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTestSluice, type TestSluice } from './support/sluice.js'
import { waitFor } from './support/wait.js'

let sluice: TestSluice

type Task = { id: number; project_id: number; done: boolean }

beforeAll(async () => {
  sluice = await startTestSluice()
  const q = (sql: string) => sluice.db.pool.query(sql)
  await q(`CREATE TABLE tasks (id int PRIMARY KEY, project_id int NOT NULL, done bool NOT NULL)`)
  await q(`CREATE TABLE memberships (id int PRIMARY KEY, project_id int NOT NULL, user_id text NOT NULL)`)
  await q(`INSERT INTO tasks SELECT i, i % 5, i % 4 = 0 FROM generate_series(1, 40) i`)
  await q(`INSERT INTO memberships VALUES (1, 1, 'ann'), (2, 2, 'ben')`)
})

afterAll(async () => {
  await sluice?.close()
})

function collectionOf(id: string, where: string, params: string[]): Collection<Task> {
  return createCollection(
    electricCollectionOptions({
      id,
      shapeOptions: { url: sluice.shapeUrl(), params: { table: 'tasks', where, params } },
      getKey: (row: Task) => row.id,
    }),
  ) as unknown as Collection<Task>
}

async function pgRows(where: string, params: string[]): Promise<Task[]> {
  const { rows } = await sluice.db.pool.query<Task>(`SELECT id, project_id, done FROM tasks WHERE ${where} ORDER BY id`, params)
  return rows
}

const rowsOf = (collection: Collection<Task>) =>
  [...collection.values()].map(({ id, project_id, done }) => ({ id, project_id, done })).sort((a, b) => a.id - b.id)

describe('TanStack DB electric collection with subqueries', () => {
  it('keeps PostgreSQL’s rows through move-ins, move-outs and rows held by two reasons', async () => {
    const shapes = [
      ['project_id IN (SELECT project_id FROM memberships WHERE user_id = $1)', ['ann']],
      ['done OR project_id IN (SELECT project_id FROM memberships WHERE user_id = $1)', ['ann']],
    ] as const
    const collections = shapes.map(([where, params], i) => collectionOf(`subquery-${i}`, where, [...params]))
    for (const collection of collections) await collection.toArrayWhenReady()
    const check = async () => {
      for (const [i, [where, params]] of shapes.entries()) {
        const want = await pgRows(where.replace('$1', `'${params[0]}'`), [])
        await waitFor(() => expect(rowsOf(collections[i]!)).toEqual(want))
      }
    }
    await check()
    expect(rowsOf(collections[0]!).length).toBeGreaterThan(0)
    const steps = [
      `INSERT INTO memberships VALUES (3, 3, 'ann')`, // move-in: project 3's tasks arrive
      `UPDATE tasks SET project_id = 4 WHERE id IN (1, 3)`, // one task leaves, one stays out
      `DELETE FROM memberships WHERE id = 1`, // move-out: project 1's tasks go, but done ones stay in the OR shape
      `UPDATE memberships SET project_id = 1 WHERE id = 3`, // out of 3 and into 1 in one change
      `UPDATE tasks SET done = true WHERE project_id = 2`, // in by the row condition only
      `BEGIN; INSERT INTO memberships VALUES (4, 2, 'ann'); UPDATE tasks SET project_id = 2 WHERE id = 5; DELETE FROM memberships WHERE id = 3; COMMIT`,
      `INSERT INTO memberships VALUES (5, 4, 'ann')`,
      `UPDATE tasks SET project_id = 4 WHERE id = 7`, // stays in, from project 2 to 4: its tag for 2 is removed…
      `DELETE FROM memberships WHERE id = 4`, // …so project 2 moving out leaves it
    ]
    for (const sql of steps) {
      await sluice.db.pool.query(sql)
      await check()
    }
    for (const collection of collections) await collection.cleanup()
  })
})
