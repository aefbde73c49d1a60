/**
 * TanStack DB's electric collection against Sluice (#13), in its three sync modes: `eager`
 * (the whole shape), `progressive` (subset snapshots with `fetchSnapshot` while the full
 * shape loads) and `on-demand` (`requestSnapshot` on a `changes_only` stream). A live query
 * with `where` + `orderBy` + `limit` must equal PostgreSQL's answer, take in a new matching
 * row, and end equal to PostgreSQL after writers ran while its subsets loaded.
 */
import { BTreeIndex, createCollection, createLiveQueryCollection, eq, type Collection } from '@tanstack/db'
import { electricCollectionOptions } from '@tanstack/electric-db-collection'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTestSluice, type TestSluice } from './support/sluice.js'
import { waitFor } from './support/wait.js'

let sluice: TestSluice

type Task = { id: number; owner: string; score: number }

beforeAll(async () => {
  sluice = await startTestSluice()
  await sluice.db.pool.query(`CREATE TABLE tasks (id int PRIMARY KEY, owner text NOT NULL, score int NOT NULL)`)
  await sluice.db.pool.query(`INSERT INTO tasks SELECT i, CASE WHEN i % 2 = 0 THEN 'ann' ELSE 'ben' END, (i * 37) % 100 FROM generate_series(1, 400) i`)
})

afterAll(async () => {
  await sluice?.close()
})

const TOP = 6

async function pgTop(owner: string): Promise<Task[]> {
  const { rows } = await sluice.db.pool.query<Task>(`SELECT id, owner, score FROM tasks WHERE owner = $1 ORDER BY score DESC, id ASC LIMIT ${TOP}`, [owner])
  return rows
}

type Mode = 'eager' | 'progressive' | 'on-demand'

function tasksCollection(mode: Mode, subsetMethod: 'GET' | 'POST'): Collection<Task> {
  return createCollection(
    electricCollectionOptions({
      id: `tasks-${mode}-${subsetMethod}`,
      shapeOptions: { url: sluice.shapeUrl(), params: { table: 'tasks', replica: 'full' }, subsetMethod },
      getKey: (row: Task) => row.id,
      syncMode: mode,
      // An index on the sort column lets the live query load its top rows as subsets.
      autoIndex: 'eager',
      defaultIndexType: BTreeIndex,
    }),
  ) as unknown as Collection<Task>
}

/** The live query's rows, without TanStack's virtual `$` properties. */
function rowsOf(live: { toArray: Task[] }): Task[] {
  return live.toArray.map(({ id, owner, score }) => ({ id, owner, score }))
}

function topOf(collection: Collection<Task>, owner: string) {
  const live = createLiveQueryCollection((q) =>
    q
      .from({ t: collection })
      .where(({ t }) => eq(t.owner, owner))
      .orderBy(({ t }) => t.score, 'desc')
      .orderBy(({ t }) => t.id, 'asc')
      .limit(TOP)
      .select(({ t }) => ({ id: t.id, owner: t.owner, score: t.score })),
  )
  // A subscriber, as a rendered component is: a live query nobody watches is collected after 5 s.
  live.subscribeChanges(() => {})
  return live
}

let nextId = 10_000

async function write(stopAt: number): Promise<number> {
  let transactions = 0
  while (Date.now() < stopAt) {
    const pick = Math.random()
    if (pick < 0.5) await sluice.db.pool.query(`UPDATE tasks SET score = (score + 41) % 100 WHERE id = (SELECT id FROM tasks ORDER BY random() LIMIT 1)`)
    else if (pick < 0.8) await sluice.db.pool.query(`INSERT INTO tasks VALUES ($1, $2, $3)`, [nextId++, Math.random() < 0.5 ? 'ann' : 'ben', Math.floor(Math.random() * 100)])
    else await sluice.db.pool.query(`DELETE FROM tasks WHERE id = (SELECT id FROM tasks ORDER BY score DESC LIMIT 1 OFFSET (random() * 10)::int)`)
    transactions++
  }
  return transactions
}

describe('TanStack DB electric collection', () => {
  const cases: [Mode, 'GET' | 'POST'][] = [['eager', 'GET'], ['progressive', 'GET'], ['on-demand', 'GET'], ['on-demand', 'POST']]
  for (const [mode, method] of cases) {
    it(`${mode} (subsets by ${method}): a live query with where + orderBy + limit equals PostgreSQL, live and under writers`, async () => {
      const collection = tasksCollection(mode, method)
      const ann = topOf(collection, 'ann')
      await ann.toArrayWhenReady()
      expect(rowsOf(ann)).toEqual(await pgTop('ann'))

      const id = nextId++
      // Above every score so far (earlier cases' rows included): it must come first.
      await sluice.db.pool.query(`INSERT INTO tasks VALUES ($1, 'ann', $1)`, [id])
      await waitFor(() => expect(rowsOf(ann)[0]).toEqual({ id, owner: 'ann', score: id }))

      // Writers commit while a second live query loads its subsets and the first keeps up.
      const writers = [write(Date.now() + 2_500), write(Date.now() + 2_500)]
      const ben = topOf(collection, 'ben')
      await ben.toArrayWhenReady()
      expect((await Promise.all(writers)).reduce((a, b) => a + b)).toBeGreaterThan(10)
      const [annExpected, benExpected] = [await pgTop('ann'), await pgTop('ben')]
      await waitFor(() => {
        expect(rowsOf(ann)).toEqual(annExpected)
        expect(rowsOf(ben)).toEqual(benExpected)
      }, 30_000)

      await ann.cleanup()
      await ben.cleanup()
      await collection.cleanup()
    })
  }
})
