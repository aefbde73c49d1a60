/**
 * waiters: many live requests waiting at once on one shape, half long-polls and half SSE streams
 * (what `@electric-sql/client` sends at the head), in one server process. Measured for Sluice and,
 * in the same run, for a raw `node:http` server that holds the same requests
 * (`support/waiter-server.ts`):
 * - resident memory per waiting request: RSS after `gc()` with every request held, less RSS with
 *   none, over the count (also sampled at each step of the way, to show it is linear);
 * - the time for one commit to reach every waiter (p50/p99/max over the waiters), from the moment
 *   the `UPDATE` is sent (Sluice) or the broadcast is asked for (raw), to the first bytes of it at
 *   each client socket.
 *
 * Load comes from separate processes (`support/waiter-clients.ts`: raw sockets) spread over
 * loopback source addresses 127.0.0.2…, at most 25,000 connections per address.
 *
 * The count is BENCH_WAITERS (default 100,000), capped by the open-file limit less a reserve:
 * every connection is a descriptor in the server process. `npm run bench` raises its soft limit
 * to the hard one (`ulimit -n $(ulimit -Hn)`); past the hard limit only a process with
 * CAP_SYS_RESOURCE can go (on this project's machines the hard limit is 20,000 and the capability
 * is withheld, so the count there is 19,000).
 */
import type { ChildProcess } from 'node:child_process'
import { readFileSync } from 'node:fs'
import type { BenchRow } from './support/report.js'
import type { ScenarioContext } from './support/scenario.js'
import { formatCount, progress } from './support/timing.js'
import { collect, memory, openOn, pathsFor, startGenerator, startWaiterServer, stopChild, stopGenerator, waitForCount } from './support/waiter-control.js'
import type { WaiterServerRequest } from './support/waiter-server.js'

const DEFAULT_WAITERS = 100_000
/** Descriptors a process keeps for itself besides the connections (PostgreSQL, LMDB, IPC, …). */
const RESERVED_FDS = 1_000
const PER_SOURCE_ADDRESS = 25_000
/** Memory is sampled after each of this many steps. */
const STEPS = 4
const WARM_UP = 200
/** The goal of issue 17: ≤ 12 KB (12,000 bytes) per waiting request. */
const GOAL_KB = 12
const COLLECT_TIMEOUT_MS = 120_000

export async function runWaitersBench({ cluster }: ScenarioContext): Promise<BenchRow[]> {
  const db = await cluster.createDatabase('waiters')
  try {
    await db.pool.query(`CREATE TABLE items (id bigint PRIMARY KEY, title text NOT NULL)`)
    await db.pool.query(`INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 100) g`)
    const limit = openFileLimit()
    const asked = Number(process.env['BENCH_WAITERS'] ?? DEFAULT_WAITERS)
    const count = Math.min(asked, limit - RESERVED_FDS)
    const capped = count < asked ? ` (${formatCount(asked)} asked; capped by the open-file limit of ${formatCount(limit)} per process)` : ''
    progress(`${formatCount(count)} waiters${capped}`)

    const raw = await measure({ kind: 'raw', count, limit, commit: rawCommit })
    progress(`raw node:http: ${kb(raw.perWaiter)} KB per waiter; commit reached all in ${ms(raw.max)} (p50 ${ms(raw.p50)}, p99 ${ms(raw.p99)})`)
    const sluice = await measure({ kind: 'sluice', databaseUrl: db.url, count, limit, commit: sluiceCommit(db.pool) })
    progress(`Sluice: ${kb(sluice.perWaiter)} KB per waiter; commit reached all in ${ms(sluice.max)} (p50 ${ms(sluice.p50)}, p99 ${ms(sluice.p99)})`)

    const what = `${formatCount(count)} waiting live requests on one shape, half long-poll and half SSE${capped}`
    const baseline = (value: number, unit: string) => ({ label: 'raw node:http holding the same requests', value, unit })
    return [
      {
        scenario: 'waiters',
        measure: `resident memory per waiting live request, 1 KB = 1,000 bytes (${what})`,
        value: round(sluice.perWaiter / 1000),
        unit: 'KB',
        baseline: baseline(round(raw.perWaiter / 1000), 'KB'),
        goal: { on: 'value', op: '<=', target: GOAL_KB },
        note: `RSS ${mb(sluice.before)} → ${mb(sluice.after)} MB (raw ${mb(raw.before)} → ${mb(raw.after)} MB); per waiter at each step: ${stepsText(sluice)} (raw ${stepsText(raw)}); JS heap ${kb(sluice.heapPerWaiter)} vs ${kb(raw.heapPerWaiter)} KB per waiter`,
      },
      {
        scenario: 'waiters',
        measure: `one commit reaches every waiter, p50 (${what})`,
        value: round(sluice.p50),
        unit: 'ms',
        baseline: baseline(round(raw.p50), 'ms'),
        note: `max ${ms(sluice.max)} (raw ${ms(raw.max)})`,
      },
      {
        scenario: 'waiters',
        measure: `one commit reaches every waiter, p99 (${what})`,
        value: round(sluice.p99),
        unit: 'ms',
        baseline: baseline(round(raw.p99), 'ms'),
        note: `from the UPDATE's send (raw: the broadcast's) to its first bytes at each client; ${formatCount(sluice.received)}/${formatCount(count)} waiters got it (raw ${formatCount(raw.received)}); max ${ms(sluice.max)} (raw ${ms(raw.max)}); ${sluice.generators} load-generator processes on ${sluice.sources} source addresses; requests sent again after a 408 while opening (the machine too busy to read them within the server's headers timeout): Sluice ${formatCount(sluice.retried)}, raw ${formatCount(raw.retried)}`,
      },
    ]
  } finally {
    await db.drop()
  }
}

interface Plan {
  readonly kind: 'raw' | 'sluice'
  readonly databaseUrl?: string
  readonly count: number
  readonly limit: number
  /** Makes the change every waiter should get, containing `marker`; returns when it was started (wall-clock ms). */
  readonly commit: (server: ChildProcess, marker: string) => Promise<number>
}

interface Measured {
  readonly before: number
  readonly after: number
  readonly perWaiter: number
  readonly heapPerWaiter: number
  readonly steps: readonly { readonly open: number; readonly rss: number }[]
  readonly p50: number
  readonly p99: number
  readonly max: number
  readonly received: number
  readonly generators: number
  /** Requests the server answered 408 (not read within its headers timeout) and that were sent again. */
  readonly retried: number
  readonly sources: number
}

async function measure(plan: Plan): Promise<Measured> {
  const { server, port } = await startWaiterServer(plan.databaseUrl)
  const generators: ChildProcess[] = []
  try {
    let paths = await pathsFor(port, plan.kind)
    const perGenerator = plan.limit - RESERVED_FDS
    const generatorCount = Math.max(2, Math.ceil(plan.count / perGenerator))
    const sources = Array.from({ length: Math.ceil(plan.count / PER_SOURCE_ADDRESS) }, (_, i) => `127.0.0.${i + 2}`)

    // Warm-up: code paths compiled and lazily built state made before the first measurement.
    const warm = startGenerator()
    await openOn(warm, { ...paths, port, count: WARM_UP, localAddresses: sources, firstIndex: 0 })
    await waitForCount(server, WARM_UP)
    await plan.commit(server, 'warm-up')
    await collect(warm, 'warm-up', COLLECT_TIMEOUT_MS)
    await stopGenerator(warm)
    await waitForCount(server, 0)
    // The warm-up's commit moved the head: the measured requests wait after it.
    paths = await pathsFor(port, plan.kind)

    const before = await memory(server)
    const steps: { open: number; rss: number }[] = []
    for (let i = 0; i < generatorCount; i++) generators.push(startGenerator())
    let open = 0
    const retries = generators.map(() => 0)
    for (let step = 1; step <= STEPS; step++) {
      const target = Math.round((plan.count * step) / STEPS)
      const opening = target - open
      await Promise.all(
        generators.map((generator, g) => {
          const share = Math.floor(opening / generatorCount) + (g < opening % generatorCount ? 1 : 0)
          const firstIndex = open + g
          return openOn(generator, { ...paths, port, count: share, localAddresses: sources, firstIndex }).then((n) => (retries[g] = n))
        }),
      )
      open = target
      await waitForCount(server, open)
      steps.push({ open, rss: (await memory(server)).rss })
    }
    const after = await memory(server)

    const marker = `waiters-${Date.now()}`
    const collecting = generators.map((generator) => collect(generator, marker, COLLECT_TIMEOUT_MS))
    const startedAt = await plan.commit(server, marker)
    const results = await Promise.all(collecting)
    const delays = results.flatMap((r) => r.arrivals.map((at) => at - startedAt)).sort((a, b) => a - b)
    const failed = results.reduce((n, r) => n + r.errors, 0)
    if (failed > 0) progress(`${failed} connections failed`)
    return {
      before: before.rss,
      after: after.rss,
      perWaiter: (after.rss - before.rss) / plan.count,
      heapPerWaiter: (after.heapUsed - before.heapUsed) / plan.count,
      steps,
      p50: quantile(delays, 0.5),
      p99: quantile(delays, 0.99),
      max: delays[delays.length - 1] ?? NaN,
      received: delays.length,
      generators: generatorCount,
      retried: retries.reduce((a, b) => a + b, 0),
      sources: sources.length,
    }
  } finally {
    await Promise.all(generators.map(stopGenerator))
    await stopChild(server)
  }
}

const rawCommit = (server: ChildProcess, marker: string): Promise<number> => {
  const body = JSON.stringify({ key: '"public"."items"/"1"', value: { id: '1', title: marker }, headers: { operation: 'update', lsn: '0', op_position: 0 } })
  const at = wallClock()
  server.send({ type: 'broadcast', body } satisfies WaiterServerRequest)
  return Promise.resolve(at)
}

function sluiceCommit(pool: import('pg').Pool): Plan['commit'] {
  return async (_server, marker) => {
    const at = wallClock()
    await pool.query(`UPDATE items SET title = $1 WHERE id = 1`, [marker])
    return at
  }
}

/** The soft `RLIMIT_NOFILE` of this process, which its children inherit. */
function openFileLimit(): number {
  const line = readFileSync('/proc/self/limits', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('Max open files'))
  const soft = Number(line?.split(/\s+/)[3])
  return Number.isFinite(soft) ? soft : 1024
}

function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return NaN
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!
}

function stepsText(m: Measured): string {
  return m.steps.map((s) => `${formatCount(s.open)}: ${kb((s.rss - m.before) / s.open)}`).join(', ')
}

const wallClock = () => performance.timeOrigin + performance.now()
const round = (n: number) => Math.round(n * 100) / 100
const kb = (bytes: number) => (bytes / 1000).toFixed(2)
const mb = (bytes: number) => (bytes / 1e6).toFixed(0)
const ms = (n: number) => `${n.toFixed(1)} ms`
