/**
 * TanStack DB's electric collection following shapes with subqueries through moves: its tag
 * index must keep exactly PostgreSQL's rows when memberships come and go (move-in, move-out),
 * when a task moves between projects, and when a row held by two reasons loses one (OR); and in
 * on-demand mode, where rows come from subset snapshots, which carry the same tags.
 */
import { ShapeStream } from '@electric-sql/client'
import { BTreeIndex, createCollection, createLiveQueryCollection, type Collection } from '@tanstack/db'
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

  it('on-demand: rows a subset snapshot loaded carry their tags, so a move-out takes them out', async () => {
    const where = 'project_id IN (SELECT project_id FROM memberships WHERE user_id = $1)'
    await sluice.db.pool.query(`INSERT INTO memberships VALUES (10, 3, 'cat'), (11, 4, 'cat')`)
    const stream = new ShapeStream({ url: sluice.shapeUrl(), params: { table: 'tasks', where, params: ['cat'] }, log: 'changes_only' })
    const { data } = await stream.fetchSnapshot({ where: 'id > $1', params: { '1': '0' }, orderBy: 'id', limit: 3 })
    expect(data).toHaveLength(3)
    for (const row of data) expect(row.headers).toMatchObject({ tags: [expect.any(String)], active_conditions: [true] })

    const collection = createCollection(
      electricCollectionOptions({
        id: 'subquery-on-demand',
        shapeOptions: { url: sluice.shapeUrl(), params: { table: 'tasks', where, params: ['cat'] } },
        getKey: (row: Task) => row.id,
        syncMode: 'on-demand',
        autoIndex: 'eager',
        defaultIndexType: BTreeIndex,
      }),
    ) as unknown as Collection<Task>
    const live = createLiveQueryCollection((q) =>
      q
        .from({ t: collection })
        .orderBy(({ t }) => t.id, 'asc')
        .limit(100)
        .select(({ t }) => ({ id: t.id, project_id: t.project_id, done: t.done })),
    )
    // A subscriber, as a rendered component is: a live query nobody watches is collected.
    live.subscribeChanges(() => {})
    await live.toArrayWhenReady()
    const answer = () => pgRows(`project_id IN (SELECT project_id FROM memberships WHERE user_id = 'cat')`, [])
    const rows = () => live.toArray.map(({ id, project_id, done }) => ({ id, project_id, done }))
    await waitFor(async () => expect(rows()).toEqual(await answer()))
    expect(rows().length).toBeGreaterThan(0)
    await sluice.db.pool.query(`DELETE FROM memberships WHERE id = 10`)
    await waitFor(async () => expect(rows()).toEqual(await answer()))
    await live.cleanup()
    await collection.cleanup()
  })
})
