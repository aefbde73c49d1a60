/**
 * Shapes with subqueries served by two HTTP workers (docs/ARCHITECTURE.md I25, I27). Every
 * request of these clients is on a connection of its own, on the other worker than the one
 * before, so a client's log is read by both:
 * - random transactions over tasks, memberships and projects while subquery shapes are followed
 *   (a slice of `subquery-oracle.pg.test.ts`): every state at an up-to-date is PostgreSQL's answer
 *   after some transaction, in order, and the last one the answer after the last;
 * - while a move-in's read is held by a lock, every worker answers the shape's up-to-date with a
 *   `global_last_seen_lsn` below the transaction that moved the value in, though both have
 *   taken later commits (the owner's `heldFrom`, fed to the workers); the rows then arrive.
 */
import { ShapeStream } from '@electric-sql/client'
import { request } from 'node:http'
import { Client as HttpClient } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { ChildSluice } from './support/child-sluice.js'
import { createTestDatabase, type TestDatabase } from './support/database.js'
import { mulberry32 } from './support/seeded-random.js'
import { tasksAnswer, TEXT_PARSER } from './support/subquery-tasks.js'
import { TaggedRows } from './support/tagged-rows.js'
import { waitFor } from './support/wait.js'
import { startTwoWorkers, stopTwoWorkers } from './support/workers-sluice.js'

let db: TestDatabase
let sluice: ChildSluice

const SHAPES = [
  `project_id IN (SELECT project_id FROM memberships WHERE user_id = 'u1')`,
  `project_id NOT IN (SELECT project_id FROM memberships WHERE user_id = 'u2') AND owner <> 'u3'`,
  `done OR project_id IN (SELECT id FROM projects WHERE org = 'a')`,
]

beforeAll(async () => {
  db = await createTestDatabase()
  const q = (sql: string) => db.pool.query(sql)
  await q(`CREATE TABLE projects (id int PRIMARY KEY, org text NOT NULL)`)
  await q(`CREATE TABLE tasks (id int PRIMARY KEY, project_id int, owner text NOT NULL, done bool NOT NULL)`)
  await q(`CREATE TABLE memberships (id int PRIMARY KEY, project_id int NOT NULL, user_id text NOT NULL)`)
  await q(`INSERT INTO projects SELECT i, (ARRAY['a', 'b', 'u1'])[1 + i % 3] FROM generate_series(0, 5) i`)
  await q(`INSERT INTO tasks SELECT i, i % 6, 'u' || (1 + i % 3), i % 5 = 0 FROM generate_series(1, 30) i`)
  await q(`INSERT INTO memberships VALUES (1, 1, 'u1'), (2, 2, 'u2'), (3, 3, 'u3'), (4, 1, 'u2')`)
  sluice = await startTwoWorkers(db, 'workers_subq')
  await waitFor(async () => expect((await answersOfEachWorker(`${sluice.baseUrl}/v1/health`)).size).toBe(2), 60_000)
}, 120_000)

afterAll(() => stopTwoWorkers(sluice, db))

interface Answer {
  readonly status: number
  readonly worker: string
  readonly body: string
}

/** One request on a connection of its own. */
function getFresh(url: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent: false }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => (body += chunk))
      res.on('end', () => resolve({ status: res.statusCode!, worker: String(res.headers['x-sluice-worker']), body }))
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end()
  })
}

/** The answer of each worker to `url`, by pid (new connections until both answered, or 100: on a busy machine one worker can take a long run of them). */
async function answersOfEachWorker(url: string): Promise<Map<string, Answer>> {
  const answers = new Map<string, Answer>()
  for (let i = 0; i < 100 && answers.size < 2; i++) {
    const answer = await getFresh(url)
    answers.set(answer.worker, answer)
  }
  return answers
}

/** A tag-aware client of a tasks shape whose every request is on a new connection. */
interface Follower {
  readonly rows: TaggedRows
  readonly stream: ShapeStream
  /** The workers that answered it. */
  readonly workers: Set<string>
}

/**
 * A new connection, on the worker other than `worker` if a few tries find it: the kernel picks a
 * new connection's worker, and on a busy machine one worker can take a long run of them.
 */
async function connectionAvoiding(worker: string | undefined): Promise<HttpClient> {
  for (let tries = 0; ; tries++) {
    const connection = new HttpClient(sluice.baseUrl)
    if (worker === undefined || tries === 20) return connection
    const { headers, body } = await connection.request({ path: '/v1/health', method: 'GET' })
    await body.dump()
    if (String(headers['x-sluice-worker']) !== worker) return connection
    await connection.close()
  }
}

function follow(where: string): Follower {
  const workers = new Set<string>()
  let last: string | undefined
  const fetchClient: typeof fetch = async (input, init) => {
    // A Client of its own, closed once this request is over (an aborted one too): nothing of it
    // outlives the request, and each request goes to the other worker than the one before.
    const dispatcher = await connectionAvoiding(last)
    try {
      // Node's fetch takes undici's `dispatcher`, which its RequestInit type does not list.
      const response = await fetch(input, { ...init, dispatcher } as unknown as RequestInit)
      last = String(response.headers.get('x-sluice-worker'))
      workers.add(last)
      return response
    } finally {
      void dispatcher.close()
    }
  }
  const rows = new TaggedRows()
  const stream = new ShapeStream({ url: sluice.shapeUrl, params: { table: 'tasks', where }, parser: TEXT_PARSER, fetchClient })
  stream.subscribe((messages) => rows.apply(messages))
  return { rows, stream, workers }
}

/** Each state at an up-to-date is an answer after some transaction, never going back. */
function expectStatesIn(states: readonly string[], history: readonly string[], what: string): void {
  let at = 0
  for (const state of states) {
    const found = history.indexOf(state, at)
    expect(found, `${what}: a state no transaction left: ${state}`).toBeGreaterThanOrEqual(0)
    at = found
  }
}

/** The `global_last_seen_lsn` of an `offset=now` answer (one up-to-date). */
function lastSeen(answer: Answer): bigint {
  expect(answer.status, answer.body).toBe(200)
  const [message] = JSON.parse(answer.body) as { headers: { global_last_seen_lsn: string } }[]
  return BigInt(message!.headers.global_last_seen_lsn)
}

/** PostgreSQL's WAL insert position as a number, the unit of `global_last_seen_lsn`. */
async function walPosition(): Promise<bigint> {
  const { rows } = await db.pool.query<{ lsn: string }>(`SELECT (pg_current_wal_insert_lsn() - '0/0'::pg_lsn)::text AS lsn`)
  return BigInt(rows[0]!.lsn)
}

describe('SLUICE_WORKERS=2 with subqueries', () => {
  it('holds PostgreSQL’s answer at every up-to-date through random transactions, read by both workers', async () => {
    const seed = Number(process.env['SLUICE_TEST_SEED'] ?? Math.floor(Math.random() * 2 ** 31))
    console.log(`workers subquery seed ${seed}`)
    const next = mulberry32(seed)
    const pick = <T,>(items: readonly T[]): T => items[Math.floor(next() * items.length)]!
    const int = (n: number) => Math.floor(next() * n)
    const histories = SHAPES.map(() => [] as string[])
    const record = async () => {
      for (const [i, where] of SHAPES.entries()) histories[i]!.push(await tasksAnswer(db.pool, where))
    }
    await record()
    const clients = SHAPES.map((where) => follow(where))
    try {
      await waitFor(() => expect(clients.every((c) => c.rows.states.length > 0)).toBe(true), 30_000)
      let nextId = 1000
      const statements = [
        () => `INSERT INTO tasks VALUES (${nextId++}, ${int(7)}, 'u${1 + int(3)}', ${next() < 0.3})`,
        () => `UPDATE tasks SET project_id = ${int(7)} WHERE id IN (SELECT id FROM tasks ORDER BY random() LIMIT ${1 + int(3)})`,
        () => `DELETE FROM tasks WHERE id = (SELECT id FROM tasks ORDER BY random() LIMIT 1)`,
        () => `INSERT INTO memberships VALUES (${nextId++}, ${int(7)}, '${pick(['u1', 'u2', 'u3'])}')`,
        () => `DELETE FROM memberships WHERE id = (SELECT id FROM memberships ORDER BY random() LIMIT 1)`,
        () => `UPDATE projects SET org = '${pick(['a', 'b', 'u1'])}' WHERE id = ${int(6)}`,
      ]
      for (let t = 0; t < 30; t++) {
        const client = await db.pool.connect()
        try {
          await client.query(`BEGIN; SELECT setseed(${next() * 2 - 1})`)
          for (let n = 1 + int(3); n > 0; n--) await client.query(pick(statements)())
          await client.query('COMMIT')
        } finally {
          client.release()
        }
        await record()
        // Every few transactions the clients catch up, so that intermediate states are checked too.
        if (t % 5 === 4) await waitFor(() => expect(clients.map((c) => c.rows.state())).toEqual(histories.map((h) => h.at(-1))), 30_000)
      }
      await waitFor(() => expect(clients.map((c) => c.rows.state())).toEqual(histories.map((h) => h.at(-1))), 30_000)
    } finally {
      for (const client of clients) client.stream.unsubscribeAll()
    }
    for (const [i, client] of clients.entries()) {
      expectStatesIn(client.rows.states, histories[i]!, `shape ${i} (${SHAPES[i]})`)
      expect(client.workers.size, `shape ${i}: answered by both workers`).toBe(2)
    }
  }, 180_000)

  it('holds global_last_seen_lsn below a move-in being read on every worker', async () => {
    const where = `project_id IN (SELECT project_id FROM memberships WHERE user_id = 'u9')`
    // Project 1 has a task whatever the random test before left, so moving it in moves a row in.
    await db.pool.query(`INSERT INTO tasks VALUES (5000, 1, 'u1', false)`)
    const client = follow(where)
    const history = [await tasksAnswer(db.pool, where)]
    // Another shape, whose up-to-date shows what a worker has processed; made now, as a shape
    // made during the lock would wait for the locker's transaction to end (I2).
    const probe = `${sluice.shapeUrl}?table=projects&offset=now`
    expect([...(await answersOfEachWorker(probe)).values()].map((answer) => answer.status)).toEqual([200, 200])
    try {
      await waitFor(() => expect(client.rows.states.length).toBeGreaterThan(0), 30_000)
      const locker = await db.pool.connect()
      try {
        await locker.query('BEGIN')
        await locker.query('LOCK TABLE tasks IN ACCESS EXCLUSIVE MODE')
        await db.pool.query(`INSERT INTO memberships VALUES (900, 1, 'u9')`)
        // Past the commit of the transaction that moves project 1 in: the held shape's promise
        // must stay below this.
        const movedBy = await walPosition()
        await waitFor(async () => {
          const { rows } = await db.pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_locks WHERE relation = 'tasks'::regclass AND NOT granted`)
          expect(rows[0]!.n, 'the move-in read waits for the lock').toBeGreaterThan(0)
        }, 30_000)
        // A later commit, which both workers take while the read waits: another shape's
        // up-to-date on each shows the LSN it has processed.
        await db.pool.query(`INSERT INTO memberships VALUES (901, 2, 'u8')`)
        await waitFor(async () => {
          const answers = await answersOfEachWorker(probe)
          expect(answers.size).toBe(2)
          for (const answer of answers.values()) expect(lastSeen(answer), `worker ${answer.worker} took the later commit`).toBeGreaterThanOrEqual(movedBy)
        }, 30_000)
        const answers = await answersOfEachWorker(`${sluice.shapeUrl}?table=tasks&where=${encodeURIComponent(where)}&offset=now`)
        expect(answers.size, 'both workers answered').toBe(2)
        for (const answer of answers.values()) expect(lastSeen(answer), `worker ${answer.worker}`).toBeLessThan(movedBy)
        await locker.query('COMMIT')
      } finally {
        locker.release()
      }
      history.push(await tasksAnswer(db.pool, where))
      expect(history[1]).not.toBe(history[0])
      await waitFor(() => expect(client.rows.state()).toBe(history[1]), 30_000)
    } finally {
      client.stream.unsubscribeAll()
    }
    expectStatesIn(client.rows.states, history, where)
  }, 120_000)
})
