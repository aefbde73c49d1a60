/**
 * Shapes with subqueries under concurrent writers (docs/ARCHITECTURE.md I25): four connections
 * commit random transactions over tasks and memberships at once, so move-in reads run while
 * other transactions commit, some of them shown by the read's snapshot and some not. Commit
 * order is not known here, so only the end is compared: each client then holds PostgreSQL's answer.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTestSluice, type TestSluice } from './support/sluice.js'
import { followTasks, runConcurrentWriters, tasksAnswer } from './support/subquery-tasks.js'
import { waitFor } from './support/wait.js'

let sluice: TestSluice

const SHAPES = [
  `project_id IN (SELECT project_id FROM memberships WHERE user_id = 'u1')`,
  `project_id NOT IN (SELECT project_id FROM memberships WHERE user_id = 'u2')`,
  `(project_id, owner) IN (SELECT project_id, user_id FROM memberships)`,
  `done OR project_id IN (SELECT project_id FROM memberships WHERE user_id = 'u3')`,
]

beforeAll(async () => {
  sluice = await startTestSluice()
  const q = (sql: string) => sluice.db.pool.query(sql)
  await q(`CREATE TABLE tasks (id int PRIMARY KEY, project_id int NOT NULL, owner text NOT NULL, done bool NOT NULL)`)
  await q(`CREATE TABLE memberships (id int PRIMARY KEY, project_id int NOT NULL, user_id text NOT NULL)`)
  await q(`INSERT INTO tasks SELECT i, i % 8, 'u' || (1 + i % 3), i % 7 = 0 FROM generate_series(1, 80) i`)
  await q(`INSERT INTO memberships VALUES (1, 1, 'u1'), (2, 2, 'u2'), (3, 3, 'u3')`)
})

afterAll(async () => {
  await sluice?.close()
})

describe('shapes with subqueries under concurrent writers', () => {
  it('end at PostgreSQL’s answer', async () => {
    const clients = await followTasks(sluice.shapeUrl(), SHAPES)

    let nextId = 1000
    const statements = [
      (n: number) => `INSERT INTO memberships VALUES (${nextId++}, ${n % 8}, 'u${1 + (n % 3)}')`,
      () => `DELETE FROM memberships WHERE id = (SELECT id FROM memberships ORDER BY random() LIMIT 1)`,
      (n: number) => `UPDATE tasks SET project_id = ${n % 8} WHERE id = (SELECT id FROM tasks ORDER BY random() LIMIT 1)`,
      (n: number) => `UPDATE tasks SET owner = 'u${1 + (n % 3)}', done = NOT done WHERE id = (SELECT id FROM tasks ORDER BY random() LIMIT 1)`,
      (n: number) => `INSERT INTO tasks VALUES (${nextId++}, ${n % 8}, 'u${1 + (n % 3)}', false)`,
    ]
    await runConcurrentWriters(sluice.db.pool, statements)
    const final = await Promise.all(SHAPES.map((where) => tasksAnswer(sluice.db.pool, where)))
    await waitFor(() => expect(clients.map((c) => c.rows.state())).toEqual(final), 30_000)
    for (const { stream } of clients) stream.unsubscribeAll()
  })
})
