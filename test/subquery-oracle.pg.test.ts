/**
 * Oracle test of shapes with subqueries: random transactions over a parent (projects), a child
 * (tasks) and a membership table — inserts, updates that move tasks between projects, deletes,
 * membership and project changes, several tables in one transaction — while several subquery
 * shapes are followed live with `@electric-sql/client`. Every state a client holds at an
 * up-to-date must be PostgreSQL's answer after some transaction, in order, and the last one the
 * answer after the last. A shape may be rotated (409) where Sluice cannot follow a change
 * exactly (docs/ARCHITECTURE.md I25); its client then starts again, and its states still must be
 * answers. The nested one never is: a change in its nested result moves rows (I25). The seed
 * is printed; SLUICE_TEST_SEED replays one.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { mulberry32 } from './support/seeded-random.js'
import { startTestSluice, type TestSluice } from './support/sluice.js'
import { followTasks, tasksAnswer } from './support/subquery-tasks.js'
import { waitFor } from './support/wait.js'

let sluice: TestSluice

const SHAPES = [
  `project_id IN (SELECT project_id FROM memberships WHERE user_id = 'u1')`,
  `project_id NOT IN (SELECT project_id FROM memberships WHERE user_id = 'u2') AND owner <> 'u3'`,
  `done OR project_id IN (SELECT id FROM projects WHERE org = 'a')`,
  `(project_id, owner) IN (SELECT project_id, user_id FROM memberships)`,
  `project_id IN (SELECT id FROM projects WHERE org = 'b') AND NOT (project_id IN (SELECT project_id FROM memberships WHERE user_id = 'u3'))`,
  `project_id IN (SELECT id FROM projects WHERE org IN (SELECT user_id FROM memberships WHERE project_id = 0))`,
]

beforeAll(async () => {
  sluice = await startTestSluice()
  const q = (sql: string) => sluice.db.pool.query(sql)
  await q(`CREATE TABLE projects (id int PRIMARY KEY, org text NOT NULL)`)
  await q(`CREATE TABLE tasks (id int PRIMARY KEY, project_id int, owner text NOT NULL, done bool NOT NULL)`)
  await q(`CREATE TABLE memberships (id int PRIMARY KEY, project_id int NOT NULL, user_id text NOT NULL)`)
  await q(`INSERT INTO projects SELECT i, (ARRAY['a', 'b', 'u1'])[1 + i % 3] FROM generate_series(0, 5) i`)
  await q(`INSERT INTO tasks SELECT i, i % 6, 'u' || (1 + i % 3), i % 5 = 0 FROM generate_series(1, 30) i`)
  await q(`INSERT INTO memberships VALUES (1, 1, 'u1'), (2, 2, 'u2'), (3, 3, 'u3'), (4, 1, 'u2')`)
})

afterAll(async () => {
  await sluice?.close()
})

describe('shapes with subqueries against PostgreSQL', () => {
  it('hold PostgreSQL’s answer at every up-to-date through random transactions', async () => {
    const seed = Number(process.env['SLUICE_TEST_SEED'] ?? Math.floor(Math.random() * 2 ** 31))
    console.log(`subquery oracle seed ${seed}`)
    const next = mulberry32(seed)
    const pick = <T,>(items: readonly T[]): T => items[Math.floor(next() * items.length)]!
    const int = (n: number) => Math.floor(next() * n)

    const histories = SHAPES.map(() => [] as string[])
    const record = async () => {
      for (const [i, where] of SHAPES.entries()) histories[i]!.push(await tasksAnswer(sluice.db.pool, where))
    }
    await record()
    const clients = await followTasks(sluice.shapeUrl(), SHAPES)
    const nested = SHAPES.length - 1
    const nestedHandle = clients[nested]!.stream.shapeHandle

    let nextId = 1000
    const statements = [
      () => `INSERT INTO tasks VALUES (${nextId++}, ${int(7)}, 'u${1 + int(3)}', ${next() < 0.3})`,
      () => `UPDATE tasks SET project_id = ${int(7)} WHERE id IN (SELECT id FROM tasks ORDER BY random() LIMIT ${1 + int(3)})`,
      () => `UPDATE tasks SET owner = 'u${1 + int(3)}', done = NOT done WHERE id = (SELECT id FROM tasks ORDER BY random() LIMIT 1)`,
      () => `DELETE FROM tasks WHERE id = (SELECT id FROM tasks ORDER BY random() LIMIT 1)`,
      () => `INSERT INTO memberships VALUES (${nextId++}, ${int(7)}, '${pick(['u1', 'u2', 'u3', 'a', 'b'])}')`,
      () => `DELETE FROM memberships WHERE id = (SELECT id FROM memberships ORDER BY random() LIMIT 1)`,
      () => `UPDATE memberships SET project_id = ${int(7)} WHERE id = (SELECT id FROM memberships ORDER BY random() LIMIT 1)`,
      () => `UPDATE projects SET org = '${pick(['a', 'b', 'u1', 'u3'])}' WHERE id = ${int(6)}`,
    ]
    for (let t = 0; t < 60; t++) {
      const client = await sluice.db.pool.connect()
      try {
        await client.query(`BEGIN; SELECT setseed(${next() * 2 - 1})`)
        for (let n = 1 + int(3); n > 0; n--) await client.query(pick(statements)())
        await client.query('COMMIT')
      } finally {
        client.release()
      }
      await record()
      // Every few transactions, let the clients catch up, so intermediate states are checked too.
      if (t % 5 === 4) {
        const want = histories.map((history) => history.at(-1))
        await waitFor(() => expect(clients.map((c) => c.rows.state())).toEqual(want), 30_000)
      }
    }
    const final = histories.map((history) => history.at(-1))
    await waitFor(() => expect(clients.map((c) => c.rows.state())).toEqual(final), 30_000)
    expect(clients[nested]!.stream.shapeHandle, 'the nested shape was not refetched').toBe(nestedHandle)

    for (const [i, { rows, stream }] of clients.entries()) {
      stream.unsubscribeAll()
      // Each state at an up-to-date is an answer after some transaction, never going back.
      let at = 0
      for (const state of rows.states) {
        const found = histories[i]!.indexOf(state, at)
        expect(found, `shape ${i} (${SHAPES[i]}): a state no transaction left`).toBeGreaterThanOrEqual(0)
        at = found
      }
    }
  })
})
