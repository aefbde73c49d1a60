/**
 * Nested subqueries (docs/ARCHITECTURE.md I25): a change in a nested subquery's result moves the
 * rows of the subquery around it, and so the outer rows, in and out, without ending the shape.
 * Each step is checked against PostgreSQL's answer with the client's handle unchanged (no 409);
 * then four writers change every table at once, so the rows between are read at snapshots that
 * show later transactions, and each client ends at PostgreSQL's answer, still without a refetch.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTestSluice, type TestSluice } from './support/sluice.js'
import { followTasks, runConcurrentWriters, tasksAnswer } from './support/subquery-tasks.js'
import { waitFor } from './support/wait.js'

let sluice: TestSluice

const SHAPES = [
  `project_id IN (SELECT id FROM projects WHERE org IN (SELECT org FROM memberships WHERE user_id = 'u1'))`,
  `project_id IN (SELECT id FROM projects WHERE org NOT IN (SELECT org FROM memberships WHERE user_id = 'u2') AND id > 0)`,
  `done OR project_id IN (SELECT id FROM projects WHERE org IN (SELECT org FROM memberships WHERE user_id IN (SELECT id FROM users WHERE active)))`,
]

beforeAll(async () => {
  sluice = await startTestSluice()
  const q = (sql: string) => sluice.db.pool.query(sql)
  await q(`CREATE TABLE projects (id int PRIMARY KEY, org text NOT NULL)`)
  await q(`CREATE TABLE tasks (id int PRIMARY KEY, project_id int, owner text NOT NULL, done bool NOT NULL)`)
  await q(`CREATE TABLE memberships (id int PRIMARY KEY, org text NOT NULL, user_id text NOT NULL)`)
  await q(`CREATE TABLE users (id text PRIMARY KEY, active bool NOT NULL)`)
  await q(`INSERT INTO projects SELECT i, (ARRAY['a', 'b', 'c'])[1 + i % 3] FROM generate_series(0, 8) i`)
  await q(`INSERT INTO tasks SELECT i, i % 9, 'u1', i % 7 = 0 FROM generate_series(1, 45) i`)
  await q(`INSERT INTO memberships VALUES (1, 'c', 'u1'), (2, 'a', 'u2')`)
  await q(`INSERT INTO users VALUES ('u1', false), ('u2', true)`)
})

afterAll(async () => {
  await sluice?.close()
})

describe('nested subqueries', () => {
  it('move rows in and out as a nested result changes, without a refetch', async () => {
    const clients = await followTasks(sluice.shapeUrl(), SHAPES)
    const handles = clients.map((client) => client.stream.shapeHandle)
    const steps = [
      // An org enters u1's memberships: its projects, and their tasks, move in.
      [`INSERT INTO memberships VALUES (3, 'a', 'u1')`],
      // In one transaction: another org enters, one of its projects moves to an org outside, a task is added to a project that enters.
      [`INSERT INTO memberships VALUES (4, 'b', 'u1')`, `UPDATE projects SET org = 'd' WHERE id = 1`, `INSERT INTO tasks VALUES (100, 4, 'u2', false)`],
      // An org leaves: its projects' tasks move out (and into the NOT IN shape).
      [`DELETE FROM memberships WHERE id = 2`, `DELETE FROM memberships WHERE id = 3`],
      // A user becomes active: the third level moves the middle's rows, and so the tasks.
      [`UPDATE users SET active = true WHERE id = 'u1'`],
      [`UPDATE users SET active = false WHERE id = 'u2'`, `UPDATE projects SET org = 'c' WHERE id = 1`],
      // The middle table's own change, as before.
      [`UPDATE projects SET org = 'b' WHERE id = 0`, `INSERT INTO memberships VALUES (5, 'd', 'u2')`],
      [`UPDATE memberships SET user_id = 'u2' WHERE id = 4`],
    ]
    for (const step of steps) {
      const client = await sluice.db.pool.connect()
      try {
        await client.query('BEGIN')
        for (const sql of step) await client.query(sql)
        await client.query('COMMIT')
      } finally {
        client.release()
      }
      const want = await Promise.all(SHAPES.map((where) => tasksAnswer(sluice.db.pool, where)))
      await waitFor(() => expect(clients.map((c) => c.rows.state())).toEqual(want), 30_000)
    }
    expect(clients.map((client) => client.stream.shapeHandle)).toEqual(handles)
    for (const { stream } of clients) stream.unsubscribeAll()
  })

  it('end at PostgreSQL’s answer under concurrent writers, without a refetch', async () => {
    const clients = await followTasks(sluice.shapeUrl(), SHAPES)
    const handles = clients.map((client) => client.stream.shapeHandle)
    let nextId = 1000
    const orgs = ['a', 'b', 'c', 'd']
    const statements = [
      (n: number) => `INSERT INTO memberships VALUES (${nextId++}, '${orgs[n % 4]}', 'u${1 + (n % 2)}')`,
      () => `DELETE FROM memberships WHERE id = (SELECT id FROM memberships ORDER BY random() LIMIT 1)`,
      (n: number) => `UPDATE projects SET org = '${orgs[n % 4]}' WHERE id = ${n % 9}`,
      (n: number) => `UPDATE tasks SET project_id = ${n % 9}, done = NOT done WHERE id = (SELECT id FROM tasks ORDER BY random() LIMIT 1)`,
      (n: number) => `INSERT INTO tasks VALUES (${nextId++}, ${n % 9}, 'u1', false)`,
      (n: number) => `UPDATE users SET active = NOT active WHERE id = 'u${1 + (n % 2)}'`,
    ]
    await runConcurrentWriters(sluice.db.pool, statements)
    const final = await Promise.all(SHAPES.map((where) => tasksAnswer(sluice.db.pool, where)))
    await waitFor(() => expect(clients.map((c) => c.rows.state())).toEqual(final), 30_000)
    expect(clients.map((client) => client.stream.shapeHandle)).toEqual(handles)
    for (const { stream } of clients) stream.unsubscribeAll()
  })
})
