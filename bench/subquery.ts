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
 *   acknowledgement to the response that carries the move-in (goal: p99 ≤ 50 ms). The clients run
 *   in a process of their own (`support/subquery-clients.ts`). The note gives what the machine
 *   took of the interval: Sluice's CPU, and how long its main thread waited for a CPU while
 *   runnable (`/proc/self/schedstat`), which on a shared machine is time no change to Sluice
 *   can win back.
 *
 * Scale with BENCH_ROWS (users and projects scale with it); BENCH_SUBQUERY_USERS sets the users
 * (shapes) apart from the rows.
 */
import { fork } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { loadavg } from 'node:os'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { connectionAgent, followToUpToDate } from './support/chunk-follower.js'
import type { BenchRow } from './support/report.js'
import type { ScenarioContext } from './support/scenario.js'
import { startBenchSluice } from './support/sluice.js'
import { SUBQUERY_CLIENTS, type SubqueryClientsResult, type SubqueryClientsRun } from './support/subquery-clients.js'
import { benchRows, formatCount, progress, scaled } from './support/timing.js'

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
          // A connection each: on one shared connection the creators would wait for each other.
          const agent = connectionAgent()
          while (next < users) {
            const user = next++
            handles[user] = await followToUpToDate(sluice.shapeUrl(), params(user), { offset: '-1' }, agent)
          }
          agent.destroy()
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

    const followed = Math.min(FOLLOWED, users)
    const total = Math.round(rate * seconds)
    progress(`${formatCount(total)} membership inserts at ${rate}/s, ${followed} users followed (clients in a process of their own)`)
    const load = loadavg()[0]!
    const cpu = process.cpuUsage()
    const waited = runQueueWaitMs()
    const begin = performance.now()
    const measured = [...(await runClients({ shapeUrl: sluice.shapeUrl(), databaseUrl: db.url, where: WHERE, users, positions: positions.slice(0, followed), rate, seconds }))].sort((a, b) => a - b)
    const wallMs = performance.now() - begin
    const { user, system } = process.cpuUsage(cpu)
    const machine = `Sluice's CPU ${(((user + system) / 1000 / wallMs) * 100).toFixed(0)}% of a core, its main thread waited ${(runQueueWaitMs() - waited).toFixed(0)} ms of ${wallMs.toFixed(0)} ms for a CPU, load ${load.toFixed(1)} → ${loadavg()[0]!.toFixed(1)}`
    progress(machine)
    const quantile = (q: number) => measured[Math.min(measured.length - 1, Math.floor(q * measured.length))]!
    const note = `${formatCount(total)} membership inserts at ${rate}/s, ${followed} of ${formatCount(users)} users followed, ${formatCount(rows)} tasks; p50 ${quantile(0.5).toFixed(2)} ms, max ${measured.at(-1)!.toFixed(1)} ms; ${machine}`
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

/** Runs the followers and the writer in a child process (`support/subquery-clients.ts`); their latencies. */
function runClients(request: SubqueryClientsRun): Promise<readonly number[]> {
  const child = fork(SUBQUERY_CLIENTS, [], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  return new Promise((resolve, reject) => {
    child.once('message', (result: SubqueryClientsResult) => ('error' in result ? reject(new Error(result.error)) : resolve(result.latenciesMs)))
    child.once('exit', (code) => reject(new Error(`the subquery clients exited (${code}) before answering`)))
    child.send(request)
  })
}

/** How long this process's main thread has waited, runnable, for a CPU (Linux; 0 elsewhere). */
function runQueueWaitMs(): number {
  try {
    return Number(readFileSync('/proc/self/schedstat', 'utf8').split(' ')[1]) / 1e6
  } catch {
    return 0
  }
}
