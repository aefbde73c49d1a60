/**
 * Move-in reads that wait for a connection are read together (docs/ARCHITECTURE.md I32): reads of
 * one table waiting when a connection comes share its transaction, snapshot and query, and each
 * gets exactly the rows of its own moves. The pool here has one connection, held by the test
 * while the reads are asked for.
 */
import type pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ShapeSubqueries } from '../src/shapes/subquery/shape-subqueries.js'
import { MoveInReads } from '../src/shapes/subquery/move-in-reads.js'
import type { MoveIn } from '../src/shapes/subquery/move-in.js'
import { compileWhere } from '../src/shapes/where/compile-where.js'
import { createTestDatabase, type TestDatabase } from './support/database.js'
import { TABLES, TASKS } from './support/subquery-tables.js'
import { waitFor } from './support/wait.js'

let db: TestDatabase

beforeAll(async () => {
  db = await createTestDatabase()
  await db.pool.query(`CREATE TABLE tasks (id int PRIMARY KEY, project_id int NOT NULL, done bool NOT NULL)`)
  await db.pool.query(`INSERT INTO tasks SELECT i, i % 5, i % 2 = 0 FROM generate_series(1, 50) i`)
})

afterAll(async () => {
  await db?.drop()
})

const dependency = new ShapeSubqueries(
  compileWhere(`project_id IN (SELECT project_id FROM memberships WHERE user_id = 'u1')`, () => undefined, TASKS, TABLES),
  TASKS,
  'h',
  undefined as never,
).dependencies[0]!

const moves = (...projects: number[]): MoveIn[] => [{ dependency, tuples: projects.map((project) => [String(project)]) }]

/** A pool of one connection that counts the transactions begun on it. */
function countingPool(): { pool: pg.Pool; transactions: () => number; connect: () => Promise<pg.PoolClient> } {
  let begun = 0
  const real = db.pool
  const pool = {
    async connect() {
      const client = await real.connect()
      return new Proxy(client, {
        get(target, name, receiver) {
          if (name !== 'query') return Reflect.get(target, name, receiver) as unknown
          return (query: string | pg.QueryConfig) => {
            if ((typeof query === 'string' ? query : query.text).startsWith('BEGIN')) begun++
            return target.query(query)
          }
        },
      })
    },
  }
  return { pool: pool as unknown as pg.Pool, transactions: () => begun, connect: () => real.connect() }
}

describe('move-in reads', () => {
  it('reads of one table waiting for a connection share one transaction, each with its own rows', async () => {
    const { pool, transactions } = countingPool()
    // Every connection of the test's pool but one is held, so the reads queue for it.
    const held = await Promise.all(Array.from({ length: 7 }, () => db.pool.connect()))
    const last = await db.pool.connect()
    const reads = new MoveInReads(pool)
    const none = () => []
    const asked = [reads.read(TASKS, { moves: moves(1), missed: none }), reads.read(TASKS, { moves: moves(2, 3), missed: none }), reads.read(TASKS, { moves: moves(3), missed: none })]
    await waitFor(() => db.pool.waitingCount === 3)
    last.release()
    const answers = await Promise.all(asked)
    for (const client of held) client.release()

    expect(transactions()).toBe(1)
    const projects = answers.map((answer) => [...new Set(answer.rows.map((row) => row['project_id']))].sort())
    expect(projects).toEqual([['1'], ['2', '3'], ['3']])
    expect(answers.map((answer) => answer.rows.length)).toEqual([10, 20, 10])
    expect(new Set(answers.map((answer) => answer.lsn)).size).toBe(1)
  })

  it('a read that finds a connection free is read at once, alone', async () => {
    const { pool, transactions } = countingPool()
    const reads = new MoveInReads(pool)
    const answer = await reads.read(TASKS, { moves: moves(4), missed: () => [] })
    expect(transactions()).toBe(1)
    expect(answer.rows.map((row) => row['project_id'])).toEqual(Array.from({ length: 10 }, () => '4'))
  })
})
