/**
 * shapes: one node with 100,000 `user_id = k` shapes on one table (issue #17).
 * - creation rate: every shape asked for once (`offset=-1`) by 256 concurrent HTTP clients (after a deploy, every user at once), beside
 *   the rate PostgreSQL answers the same `SELECT … WHERE user_id = k` one by one on as many
 *   connections as Sluice may use for snapshots (the same-run baseline);
 * - resident memory per idle shape: Sluice's RSS after `gc()` with the shapes, less before them;
 * - restart, RESTARTS times: from starting the process to the first 200 for a stored shape asked for by
 *   its handle. Sluice listens only once every stored shape is loaded and in the router, so by then every
 *   shape is served and routes the first change replicated; the child's CPU time until then is beside it;
 * - routing cost per change with 10, 1,000 and 100,000 equality shapes (`routing.ts`'s workload).
 * Sluice runs in a child process (`--expose-gc`), so the load generator's memory never counts.
 */
import { fork, type ChildProcess } from 'node:child_process'
import { readFileSync } from 'node:fs'
import http from 'node:http'
import { mkdtemp, rm } from 'node:fs/promises'
import { cpus, loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import pg from 'pg'
import { perChangeNs } from './routing.js'
import { cpuOfPid, cpuOfTree, machineBusy, postmasterPid } from './support/cpu.js'
import type { BenchRow } from './support/report.js'
import type { ScenarioContext } from './support/scenario.js'
import { createItemsTable, jsonRowsSql } from './support/table.js'
import { benchRows, formatCount, FULL_ROWS, progress, scaled } from './support/timing.js'

const SELF = fileURLToPath(import.meta.url)
const CHILD_FLAG = '--shapes-bench-child'
const FULL_SHAPES = 100_000
const CLIENTS = 256
const ROWS_PER_SHAPE = 2
/** SLUICE_MAX_CONCURRENT_SNAPSHOTS's default: the baseline gets as many connections. */
const SNAPSHOT_CONNECTIONS = 4
/** Queries the baseline times (it is steady long before 100,000). */
const BASELINE_QUERIES = 20_000
/** Restarts timed; the row gives their median (the machine is shared). */
const RESTARTS = 3

interface ChildReady {
  readonly kind: 'ready'
  readonly url: string
  /** `startSluice` alone, without the process start and module loading. */
  readonly startMs: number
}
interface ChildMemory {
  readonly kind: 'memory'
  readonly rss: number
  readonly heapUsed: number
  /** RSS in anonymous pages (heap, malloc) and in mapped files (LMDB's pages, reclaimable cache). */
  readonly rssAnon: number
  readonly rssFile: number
  /** The highest RSS so far (VmHWM): the creation burst's peak, young generation included. */
  readonly peakRss: number
}

export async function runShapesBench(ctx: ScenarioContext): Promise<BenchRow[]> {
  const shapes = benchRows() >= FULL_ROWS ? FULL_SHAPES : scaled(FULL_SHAPES, 2_000)
  const db = await ctx.cluster.createDatabase('bench_shapes')
  const dataDir = await mkdtemp(join(tmpdir(), 'sluice-bench-shapes-'))
  let child: ChildProcess | undefined
  try {
    await createItemsTable(db.pool, 'items_by_user', { userIndex: true })
    await db.pool.query(
      `INSERT INTO items_by_user (id, user_id, title, amount)
       SELECT g, g % ${shapes}, 'item ' || md5(g::text), (g % 100000) / 100.0 FROM generate_series(1, ${shapes * ROWS_PER_SHAPE}) g`,
    )
    await db.pool.query('ANALYZE items_by_user')
    const baselineRate = await rawQueryRate(db.url, Math.min(shapes, BASELINE_QUERIES))
    progress(`baseline: ${formatCount(Math.round(baselineRate))} SELECTs/s on ${SNAPSHOT_CONNECTIONS} connections`)

    const env = { databaseUrl: db.url, dataDir, maxShapes: String(shapes + 1_000) }
    const first = await startChild(env)
    child = first.child
    const url = (user: number) => `${first.ready.url}/v1/shape?table=items_by_user&offset=-1&where=${encodeURIComponent(`user_id = ${user}`)}`
    // The first shape adds the table to the publication; it is not a creation like the others.
    await answer(url(shapes - 1))
    const before = await ask<ChildMemory>(child, 'memory')
    progress(`creating ${formatCount(shapes)} shapes with ${CLIENTS} clients`)
    const postmaster = await postmasterPid((sql) => db.pool.query<{ pid: number }>(sql))
    const cpuBefore = await sampleCpu(child, postmaster)
    const started = performance.now()
    let next = 0
    let handle = ''
    await Promise.all(
      Array.from({ length: CLIENTS }, async () => {
        for (let user = next++; user < shapes - 1; user = next++) {
          const response = await answer(url(user))
          if (user === 0) handle = String(response.headers['electric-handle'])
          if ((user + 1) % 20_000 === 0) progress(`${formatCount(user + 1)} shapes`)
        }
      }),
    )
    const creationMs = performance.now() - started
    const creationRate = (shapes - 1) / (creationMs / 1000)
    const cpu = cpuText(cpuBefore, await sampleCpu(child, postmaster), creationMs, shapes - 1)
    progress(`${formatCount(shapes)} shapes at ${formatCount(Math.round(creationRate))}/s; CPU ${cpu}`)
    const after = await ask<ChildMemory>(child, 'memory')
    progress(`RSS ${mib(before.rss)} → ${mib(after.rss)} MiB after gc(), peak ${mib(after.peakRss)} MiB; load ${loadavg()[0]!.toFixed(1)}`)
    const perShape = (after.rss - before.rss) / shapes
    const heapPerShape = (after.heapUsed - before.heapUsed) / shapes

    await stopChild(child)
    child = undefined
    const restarts: Restart[] = []
    for (let i = 0; i < RESTARTS; i++) {
      const restart = await timeRestart(env, `user_id = 0`, handle, (started) => (child = started))
      child = undefined
      restarts.push(restart)
      progress(`restart with ${formatCount(shapes)} shapes: ${restartText(restart)}`)
    }
    const restart = [...restarts].sort((a, b) => a.ms - b.ms)[Math.floor(RESTARTS / 2)]!

    const routing = await routingCosts(shapes)
    const rows: BenchRow[] = [
      {
        scenario: 'shapes',
        measure: `shape creation, ${formatCount(shapes)} new \`user_id = k\` shapes on one table (${ROWS_PER_SHAPE} rows each), ${CLIENTS} concurrent clients`,
        value: creationRate,
        unit: 'shapes/s',
        baseline: { label: `the same SELECTs one by one on ${SNAPSHOT_CONNECTIONS} connections`, value: baselineRate, unit: 'queries/s' },
        goal: { on: 'value', op: '>=', target: 2_000 },
        note: `CPU during creation, % of one core (µs per shape): ${cpu}; load average ${loadavg()[0]!.toFixed(1)} at the end`,
      },
      {
        scenario: 'shapes',
        measure: `resident memory per idle shape, ${formatCount(shapes)} shapes`,
        value: perShape / 1024,
        unit: 'KiB',
        goal: { on: 'value', op: '<=', target: 10 },
        note: `RSS ${mib(before.rss)} → ${mib(after.rss)} MiB after gc(), of which anonymous ${kibPer(before.rssAnon, after.rssAnon, shapes)} and LMDB's mapped file ${kibPer(before.rssFile, after.rssFile, shapes)} KiB per shape; JS heap ${(heapPerShape / 1024).toFixed(2)} KiB per shape; peak RSS while creating ${mib(after.peakRss)} MiB`,
      },
      {
        scenario: 'shapes',
        measure: `restart with ${formatCount(shapes)} shapes: process start to the first answer for a stored shape, all of them loaded (median of ${RESTARTS})`,
        value: restart.ms / 1000,
        unit: 's',
        goal: { on: 'value', op: '<=', target: 10 },
        note: `${restarts.map(restartText).join('; ')}; startSluice is the part after Node and module loading`,
      },
      ...routing,
    ]
    return rows
  } finally {
    if (child) await stopChild(child)
    await rm(dataDir, { recursive: true, force: true })
    await db.drop()
  }
}

interface Restart {
  readonly ms: number
  /** `startSluice` alone. */
  readonly startMs: number
  /** The child's CPU time until the answer (all its threads). */
  readonly cpuMs: number
  readonly load: number
}

/** Starts Sluice on `env`'s stored shapes and times the first 200 for the shape `where` by its handle; stops it again. */
async function timeRestart(env: ChildEnv, where: string, handle: string, started: (child: ChildProcess) => void): Promise<Restart> {
  const startedAt = performance.now()
  const { child, ready } = await startChild(env)
  started(child)
  await answer(`${ready.url}/v1/shape?table=items_by_user&offset=-1&handle=${handle}&where=${encodeURIComponent(where)}`)
  const ms = performance.now() - startedAt
  const cpuMs = await cpuOfPid(child.pid!)
  await stopChild(child)
  return { ms, startMs: ready.startMs, cpuMs, load: loadavg()[0]! }
}

const restartText = (r: Restart) => `${(r.ms / 1000).toFixed(2)} s (startSluice ${(r.startMs / 1000).toFixed(2)} s, CPU ${(r.cpuMs / 1000).toFixed(2)} s, load ${r.load.toFixed(1)})`

/** `SELECT … WHERE user_id = k` for `count` users, on SNAPSHOT_CONNECTIONS connections: queries a second. */
async function rawQueryRate(url: string, count: number): Promise<number> {
  const pool = new pg.Pool({ connectionString: url, max: SNAPSHOT_CONNECTIONS })
  try {
    const sql = jsonRowsSql('items_by_user', 'user_id = $1')
    await pool.query(sql, [0])
    const started = performance.now()
    let next = 0
    await Promise.all(
      Array.from({ length: SNAPSHOT_CONNECTIONS }, async () => {
        for (let user = next++; user < count; user = next++) await pool.query(sql, [user])
      }),
    )
    return count / ((performance.now() - started) / 1000)
  } finally {
    await pool.end()
  }
}

/** Router cost per change at 10, 1,000 and `shapes` equality shapes; the ratio is against 10. */
async function routingCosts(shapes: number): Promise<BenchRow[]> {
  const sizes = [1_000, shapes]
  const tenNs = await perChangeNs(10, '=', 200, 5)
  const rows: BenchRow[] = []
  for (const size of sizes) {
    progress(`routing with ${formatCount(size)} shapes`)
    const ns = await perChangeNs(size, '=', 200, 5)
    rows.push({
      scenario: 'shapes',
      measure: `router cost per change, ${formatCount(size)} equality shapes (in-process, storage stubbed; routing.ts's workload)`,
      value: ns,
      unit: 'ns',
      baseline: { label: '10 shapes', value: tenNs, unit: 'ns' },
      goal: { on: 'ratio', op: '<=', target: 2 },
    })
  }
  return rows
}

/**
 * node:http on keep-alive sockets, one per client: the load generator shares the two cores with
 * Sluice and PostgreSQL, and costs about half of what `fetch` does per request.
 */
const agent = new http.Agent({ keepAlive: true, maxSockets: CLIENTS })

function answer(url: string): Promise<http.IncomingMessage> {
  return new Promise((resolve, reject) => {
    http
      .get(url, { agent }, (response) => {
        const chunks: Buffer[] = []
        response.on('data', (chunk: Buffer) => chunks.push(chunk))
        response.on('error', reject)
        response.on('end', () => {
          if (response.statusCode === 200) resolve(response)
          else reject(new Error(`${url}: ${response.statusCode} ${Buffer.concat(chunks).toString('utf8').slice(0, 200)}`))
        })
      })
      .on('error', reject)
  })
}

interface CpuSample {
  readonly sluice: number
  readonly postgres: number
  readonly self: number
  readonly machine: number
}

async function sampleCpu(child: ChildProcess, postmaster: number): Promise<CpuSample> {
  const [sluice, postgres, machine] = await Promise.all([cpuOfPid(child.pid!), cpuOfTree(postmaster), machineBusy()])
  const { user, system } = process.cpuUsage()
  return { sluice, postgres, self: (user + system) / 1000, machine }
}

/** Each part's CPU over `ms`, in % of one core and µs per shape. */
function cpuText(before: CpuSample, after: CpuSample, ms: number, shapes: number): string {
  const part = (label: string, used: number) => `${label} ${((100 * used) / ms).toFixed(0)}% (${((1000 * used) / shapes).toFixed(0)} µs)`
  const sluice = after.sluice - before.sluice
  const postgres = after.postgres - before.postgres
  const self = after.self - before.self
  const rest = after.machine - before.machine - sluice - postgres - self
  return `${[part('Sluice', sluice), part('PostgreSQL', postgres), part('load generator', self), part('rest of the machine', rest)].join(', ')} (of ${cpus().length * 100}%)`
}

const mib = (bytes: number) => (bytes / 1024 ** 2).toFixed(0)
const kibPer = (before: number, after: number, n: number) => ((after - before) / n / 1024).toFixed(2)

// --- the child process -------------------------------------------------------------------------

type ChildEnv = Record<'databaseUrl' | 'dataDir' | 'maxShapes', string>

async function startChild(env: ChildEnv): Promise<{ child: ChildProcess; ready: ChildReady }> {
  // BENCH_CHILD_NODE_OPTIONS: extra Node flags for the Sluice child (`--cpu-prof`, `--heapsnapshot-signal=SIGUSR2`),
  // after the young generation `npm start` gives Sluice (README, "Node's young generation"), so they can override it.
  const extra = (process.env['BENCH_CHILD_NODE_OPTIONS'] ?? '').split(' ').filter((flag) => flag !== '')
  const execArgv = ['--import', 'tsx', '--expose-gc', '--max-semi-space-size=64', ...extra]
  const child = fork(SELF, [CHILD_FLAG, JSON.stringify(env)], { execArgv, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  return { child, ready: await next<ChildReady>(child) }
}

async function stopChild(child: ChildProcess): Promise<void> {
  const exited = new Promise((resolve) => child.once('exit', resolve))
  child.send('stop')
  await exited
}

function next<T>(child: ChildProcess): Promise<T> {
  return new Promise((resolve, reject) => {
    const onExit = (code: number | null) => reject(new Error(`the Sluice child exited with ${code}`))
    child.once('exit', onExit)
    child.once('message', (message) => {
      child.off('exit', onExit)
      resolve(message as T)
    })
  })
}

function ask<T>(child: ChildProcess, what: string): Promise<T> {
  const answered = next<T>(child)
  child.send(what)
  return answered
}

async function runChild(env: ChildEnv): Promise<void> {
  const { loadConfig } = await import('../src/config.js')
  const { createLogger } = await import('../src/log.js')
  const { startSluice } = await import('../src/server.js')
  const config = {
    ...loadConfig({}),
    port: 0,
    host: '127.0.0.1',
    dataDir: env.dataDir,
    replicationSlot: 'sluice_bench_shapes',
    publication: 'sluice_bench_shapes',
    logLevel: (process.env['BENCH_LOG'] ?? 'silent') as 'silent',
    maxShapes: Number(env.maxShapes),
    snapshotQueueLength: 1_000,
    databaseUrl: env.databaseUrl,
  }
  const started = performance.now()
  const server = await startSluice(config, createLogger(config.logLevel))
  const startMs = performance.now() - started
  process.on('message', (message) => {
    if (message === 'stop') {
      void server.stop().then(() => process.exit(0))
      return
    }
    for (let i = 0; i < 3; i++) globalThis.gc?.()
    const { rss, heapUsed } = process.memoryUsage()
    const status = readFileSync('/proc/self/status', 'utf8')
    const kb = (field: string) => 1024 * Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0)
    process.send!({ kind: 'memory', rss, heapUsed, rssAnon: kb('RssAnon'), rssFile: kb('RssFile'), peakRss: kb('VmHWM') } satisfies ChildMemory)
  })
  process.send!({ kind: 'ready', url: server.url, startMs } satisfies ChildReady)
}

if (process.argv[2] === CHILD_FLAG) void runChild(JSON.parse(process.argv[3]!) as ChildEnv)
