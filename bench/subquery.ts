/**
 * subquery: per-user relational shapes, `project_id IN (SELECT project_id FROM memberships
 * WHERE user_id = $1)`, one per user (10,000 at full scale) over a tasks table of BENCH_ROWS rows
 * (each user a member of one project of 100 tasks).
 *
 * - memory per shape: heap growth of Sluice (in this process) over creating the subquery shapes,
 *   beside the growth over creating as many plain `project_id = $1` shapes just before.
 * - move-in latency: a writer commits membership inserts at 100 per second (BENCH_SUBQUERY_RATE)
 *   for BENCH_SUBQUERY_SECONDS (10), each giving one of 200 followed users a further project of
 *   100 tasks; each followed user long-polls its shape, and the latency is from the commit's
 *   acknowledgement to the response that carries the move-in (goal: p99 ≤ 50 ms).
 *
 * Scale with BENCH_ROWS (users and projects scale with it); BENCH_SUBQUERY_USERS sets the users
 * (shapes) apart from the rows.
 */
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import pg from 'pg'
import { followToUpToDate, getChunk, chunkUrl } from './support/chunk-follower.js'
import type { BenchRow } from './support/report.js'
import type { ScenarioContext } from './support/scenario.js'
import { startBenchSluice } from './support/sluice.js'
import { benchRows, formatCount, progress, sleep, scaled } from './support/timing.js'

// Heap figures mean something only after a full collection; `npm run bench` runs without --expose-gc.
setFlagsFromString('--expose-gc')
const collectGarbage = runInNewContext('gc') as () => void

const TASKS_PER_PROJECT = 100
const FOLLOWED = 200
const CONCURRENCY = 8
const WHERE = 'project_id IN (SELECT project_id FROM memberships WHERE user_id = $1)'

export async function runSubqueryBench(ctx: ScenarioContext): Promise<BenchRow[]> {
  const rows = benchRows()
  const users = Number(process.env['BENCH_SUBQUERY_USERS'] ?? scaled(10_000, 200))
  const projects = Math.max(users, Math.ceil(rows / TASKS_PER_PROJECT))
  const rate = Number(process.env['BENCH_SUBQUERY_RATE'] ?? 100)
  const seconds = Number(process.env['BENCH_SUBQUERY_SECONDS'] ?? 10)
  const db = await ctx.cluster.createDatabase('bench_subquery')
  await db.pool.query(`CREATE TABLE tasks (id int PRIMARY KEY, project_id int NOT NULL, title text NOT NULL)`)
  await db.pool.query(`INSERT INTO tasks SELECT g, g % ${projects}, 'task ' || g FROM generate_series(1, ${rows}) g`)
  await db.pool.query(`CREATE INDEX ON tasks (project_id)`)
  await db.pool.query(`CREATE TABLE memberships (id serial PRIMARY KEY, project_id int NOT NULL, user_id text NOT NULL)`)
  await db.pool.query(`INSERT INTO memberships (project_id, user_id) SELECT g, 'u' || g FROM generate_series(0, ${users - 1}) g`)
  await db.pool.query(`CREATE INDEX ON memberships (user_id)`)
  await db.pool.query('VACUUM (ANALYZE) tasks, memberships')
  const sluice = await startBenchSluice(db, { maxShapes: 2 * users + 10 })
  try {
    const createAll = async (params: (user: number) => Record<string, string>) => {
      let next = 0
      const handles: { handle: string; offset: string }[] = []
      await Promise.all(
        Array.from({ length: CONCURRENCY }, async () => {
          while (next < users) {
            const user = next++
            handles[user] = await followToUpToDate(sluice.shapeUrl(), params(user))
          }
        }),
      )
      return handles
    }
    const heap = () => {
      collectGarbage()
      collectGarbage()
      return process.memoryUsage().heapUsed
    }
    const heap0 = heap()
    let started = performance.now()
    await createAll((user) => ({ table: 'tasks', where: 'project_id = $1', 'params[1]': String(user) }))
    const equalitySeconds = (performance.now() - started) / 1000
    const heap1 = heap()
    progress(`${formatCount(users)} equality shapes in ${equalitySeconds.toFixed(1)} s`)
    started = performance.now()
    const params = (user: number) => ({ table: 'tasks', where: WHERE, 'params[1]': `u${user}` })
    const positions = await createAll(params)
    const subquerySeconds = (performance.now() - started) / 1000
    const heap2 = heap()
    progress(`${formatCount(users)} subquery shapes in ${subquerySeconds.toFixed(1)} s`)
    const perEquality = (heap1 - heap0) / users
    const perSubquery = (heap2 - heap1) / users

    // Followers: one long-poll loop per followed user; a commit waits for its user's move-in.
    const followed = Math.min(FOLLOWED, users)
    const waiting = new Map<number, { committedAt: number; resolve: (ms: number) => void }[]>()
    let stopping = false
    const follow = async (user: number) => {
      let { handle, offset } = positions[user]!
      while (!stopping) {
        const response = await getChunk(chunkUrl(sluice.shapeUrl(), { ...params(user), live: 'true' }, { offset, handle }))
        if (response.status !== 200) throw new Error(`follower of u${user}: ${response.status}`)
        handle = response.headers['electric-handle'] ?? handle
        offset = response.headers['electric-offset'] ?? offset
        const arrived = response.body.toString().split('"move-in"').length - 1
        const pending = waiting.get(user) ?? []
        for (const entry of pending.splice(0, arrived)) entry.resolve(Math.max(0, performance.now() - entry.committedAt))
      }
    }
    const followers = Array.from({ length: followed }, (_, user) => follow(user))
    const writer = new pg.Client({ connectionString: db.url })
    await writer.connect()
    const latencies: Promise<number>[] = []
    const total = Math.round(rate * seconds)
    progress(`${formatCount(total)} membership inserts at ${rate}/s, ${followed} users followed`)
    const begin = performance.now()
    for (let n = 0; n < total; n++) {
      const due = begin + (n * 1000) / rate
      if (due > performance.now()) await sleep(due - performance.now())
      const user = n % followed
      // Another user's project, a new one for this user each round: its tasks move in.
      const project = (user + Math.floor(users / 2) + Math.floor(n / followed)) % users
      let resolve!: (ms: number) => void
      latencies.push(new Promise<number>((r) => (resolve = r)))
      // Queued before the commit is acknowledged (its move-in cannot arrive earlier), timed from the acknowledgement.
      const entry = { committedAt: Number.POSITIVE_INFINITY, resolve }
      const queue = waiting.get(user) ?? []
      waiting.set(user, queue)
      queue.push(entry)
      await writer.query(`INSERT INTO memberships (project_id, user_id) VALUES ($1, $2)`, [project, `u${user}`])
      entry.committedAt = performance.now()
    }
    const measured = (await Promise.race([Promise.all(latencies), sleep(60_000).then(() => Promise.reject(new Error('a move-in did not reach its follower within 60 s')))])).sort((a, b) => a - b)
    stopping = true
    await writer.end()
    // The followers' last long-polls end at their timeout; they are not waited for.
    void Promise.allSettled(followers)
    const quantile = (q: number) => measured[Math.min(measured.length - 1, Math.floor(q * measured.length))]!
    const note = `${formatCount(total)} membership inserts at ${rate}/s, ${followed} of ${formatCount(users)} users followed, ${formatCount(rows)} tasks; p50 ${quantile(0.5).toFixed(2)} ms, max ${measured.at(-1)!.toFixed(1)} ms`
    return [
      {
        scenario: 'subquery',
        measure: `membership change → move-in at the user's long-poll, p99 (${formatCount(users)} per-user subquery shapes)`,
        value: quantile(0.99),
        unit: 'ms',
        goal: { on: 'value', op: '<=', target: 50 },
        note,
      },
      {
        scenario: 'subquery',
        measure: `heap per shape, ${formatCount(users)} per-user subquery shapes (created in ${subquerySeconds.toFixed(0)} s; equality shapes in ${equalitySeconds.toFixed(0)} s)`,
        value: perSubquery / 1024,
        unit: 'KiB',
        baseline: { label: '`project_id = $1` shapes', value: perEquality / 1024, unit: 'KiB' },
      },
    ]
  } finally {
    await sluice.close()
    await db.drop()
  }
}
