/**
 * workers: Sluice with `SLUICE_WORKERS=2` against `SLUICE_WORKERS=1`, in the same run, on two
 * loads where HTTP is the work:
 * - cached: one complete chunk requested by 100 keep-alive clients (`autocannon`), as in `cached`;
 * - fan-out: 1,000 SSE clients on one shape while a writer commits 1,000 transactions a second
 *   (`sse-latency.ts`'s fan-out run), commit → event p50 and p99.
 * Sluice runs as `npm start` does (`src/main.ts`, a process tree). This machine's cores are
 * shared by Sluice, PostgreSQL and the load generator, so each row says how much CPU Sluice and
 * the load generator took: with two cores, a load generator that needs one leaves Sluice one,
 * however many workers it runs.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { cpus, loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { freePort } from '../src/pg/free-port.js'
import { measureFanOut, type Load, type Measured } from './sse-latency.js'
import { chunkUrl, getChunk } from './support/chunk-follower.js'
import { cpuOfTree } from './support/cpu.js'
import type { BenchDatabase } from './support/cluster.js'
import { formatNumber, round2, type BenchRow } from './support/report.js'
import type { ScenarioContext } from './support/scenario.js'
import { createItemsTable, insertItems } from './support/table.js'
import { benchRows, FULL_ROWS, progress, waitUntil } from './support/timing.js'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const CHUNK_BYTES = 64 * 1024
const CONNECTIONS = 100
const ROUNDS = 3
const SLOT = 'sluice_bench_workers'

interface CachedRun {
  readonly requestsPerSecond: number
  readonly errors: number
  /** % of one CPU over the run. */
  readonly sluiceCpu: number
  readonly loadCpu: number
}

export async function runWorkersBench(ctx: ScenarioContext): Promise<BenchRow[]> {
  const seconds = benchRows() >= FULL_ROWS ? 8 : 3
  const db = await ctx.cluster.createDatabase('bench_workers')
  try {
    await createItemsTable(db.pool)
    await insertItems(db.pool, 1, 2_000)
    // The machine is shared: the load beside the figures says how far they can be trusted.
    const loadAtStart = loadavg()[0]!
    const cached = new Map<number, CachedRun>()
    for (const workers of [1, 2]) cached.set(workers, await cachedRun(db, workers, seconds))
    const load: Load = { clients: 1_000, procs: 2, seconds: benchRows() >= FULL_ROWS ? 10 : 5, rate: 1_000 }
    const fanOut = new Map<number, Measured>()
    for (const workers of [1, 2]) {
      progress(`fan-out, SLUICE_WORKERS=${workers}`)
      fanOut.set(workers, await measureFanOut(db, workers, load))
    }
    return toRows(cached, fanOut, load, seconds, `load average ${loadAtStart.toFixed(2)} at start, ${loadavg()[0]!.toFixed(2)} at the end`)
  } finally {
    await db.drop()
  }
}

function toRows(cached: Map<number, CachedRun>, fanOut: Map<number, Measured>, load: Load, seconds: number, machineLoad: string): BenchRow[] {
  const one = cached.get(1)!
  const two = cached.get(2)!
  const cpuOf = (run: CachedRun) => `Sluice ${run.sluiceCpu.toFixed(0)}%, autocannon ${run.loadCpu.toFixed(0)}%`
  const fanOne = fanOut.get(1)!
  const fanTwo = fanOut.get(2)!
  const fanCpu = (m: Measured) => `Sluice ${m.cpu.server.toFixed(0)}%, SSE client processes ${m.cpu.clients.map((c) => `${c.toFixed(0)}%`).join(' + ')}, writer ${m.cpu.writer.toFixed(0)}%`
  const events = (m: Measured) => `${formatNumber(m.merged.samples)} events, ${m.merged.complete}/${m.merged.clients} clients complete`
  return [
    {
      scenario: 'workers',
      measure: `cached chunk, ${CONNECTIONS} keep-alive clients (autocannon, best of ${ROUNDS} × ${seconds} s), SLUICE_WORKERS=2`,
      value: two.requestsPerSecond,
      unit: 'req/s',
      baseline: { label: 'SLUICE_WORKERS=1, same run', value: one.requestsPerSecond, unit: 'req/s' },
      goal: { on: 'ratio', op: '>=', target: 1 },
      note: `CPU of ${cpus().length * 100}%: workers=2 ${cpuOf(two)}; workers=1 ${cpuOf(one)}${one.errors + two.errors > 0 ? `; ${one.errors + two.errors} errors` : ''}; ${machineLoad}`,
    },
    {
      scenario: 'workers',
      measure: `SSE fan-out p99, ${load.clients} clients on one shape, ${load.rate} tx/s for ${load.seconds} s, SLUICE_WORKERS=2`,
      value: round2(fanTwo.p99),
      unit: 'ms',
      baseline: { label: 'SLUICE_WORKERS=1, same run', value: round2(fanOne.p99), unit: 'ms' },
      goal: { on: 'ratio', op: '<=', target: 1 },
      note: `p50 ${fanTwo.p50.toFixed(2)} ms vs ${fanOne.p50.toFixed(2)} ms; ${events(fanTwo)} vs ${events(fanOne)}; CPU of ${cpus().length * 100}%: workers=2 ${fanCpu(fanTwo)}; workers=1 ${fanCpu(fanOne)}; ${machineLoad}`,
    },
  ]
}

async function cachedRun(db: BenchDatabase, workers: number, seconds: number): Promise<CachedRun> {
  const dataDir = await mkdtemp(join(tmpdir(), 'sluice-bench-workers-'))
  const port = await freePort()
  const base = `http://127.0.0.1:${port}`
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
    cwd: ROOT,
    env: {
      ...process.env,
      DATABASE_URL: db.url,
      PORT: String(port),
      HOST: '127.0.0.1',
      SLUICE_DATA_DIR: dataDir,
      SLUICE_REPLICATION_SLOT: SLOT,
      SLUICE_PUBLICATION: SLOT,
      SLUICE_CHUNK_BYTES: String(CHUNK_BYTES),
      SLUICE_WORKERS: String(workers),
      LOG_LEVEL: 'warn',
    },
    stdio: ['ignore', 'ignore', 'inherit'],
  })
  try {
    await waitUntil('Sluice to serve', () => fetch(`${base}/v1/health`).then((r) => r.ok, () => false), 60_000, 100)
    const first = await getChunk(chunkUrl(`${base}/v1/shape`, { table: 'items' }, { offset: '-1' }))
    const url = chunkUrl(`${base}/v1/shape`, { table: 'items' }, { offset: first.headers['electric-offset']!, handle: first.headers['electric-handle']! })
    const chunk = await getChunk(url)
    if (chunk.status !== 200 || chunk.headers['electric-up-to-date'] !== undefined) throw new Error('expected a complete chunk')
    progress(`cached, SLUICE_WORKERS=${workers}: ${CONNECTIONS} connections, ${seconds} s per run; warm-up`)
    await timedLoad(child, url.href, 1)
    let best: CachedRun = { requestsPerSecond: 0, errors: 0, sluiceCpu: 0, loadCpu: 0 }
    for (let round = 1; round <= ROUNDS; round++) {
      const run = await timedLoad(child, url.href, seconds)
      progress(`round ${round}: ${formatNumber(run.requestsPerSecond)} req/s; CPU: Sluice ${run.sluiceCpu.toFixed(0)}%, autocannon ${run.loadCpu.toFixed(0)}%`)
      if (run.requestsPerSecond > best.requestsPerSecond) best = { ...run, errors: best.errors + run.errors }
    }
    return best
  } finally {
    const exited = new Promise((resolve) => child.once('exit', resolve))
    child.kill('SIGTERM')
    await exited
    await db.pool.query(`SELECT pg_drop_replication_slot('${SLOT}')`)
    await rm(dataDir, { recursive: true, force: true })
  }
}

/** autocannon for `seconds`, with the CPU it took (bash's `time`) and the CPU Sluice's processes took. */
async function timedLoad(sluice: ChildProcess, url: string, seconds: number): Promise<CachedRun> {
  const cli = createRequire(import.meta.url).resolve('autocannon/autocannon.js')
  const before = await cpuOfTree(sluice.pid!)
  const started = performance.now()
  const { stdout, stderr } = await run('bash', ['-c', 'TIMEFORMAT="%U %S"; time "$@"', 'load', process.execPath, cli, '-c', String(CONNECTIONS), '-d', String(seconds), '-n', '-j', url])
  const ms = performance.now() - started
  const sluiceCpu = ((await cpuOfTree(sluice.pid!)) - before) / ms * 100
  const [user, system] = stderr.trim().split('\n').at(-1)!.split(' ').map(Number)
  const report = JSON.parse(stdout) as { requests: { average: number }; errors: number; non2xx: number; timeouts: number }
  return {
    requestsPerSecond: report.requests.average,
    errors: report.errors + report.non2xx + report.timeouts,
    sluiceCpu,
    loadCpu: ((user! + system!) * 1000) / ms * 100,
  }
}

function run(command: string, args: readonly string[]): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (part: Buffer) => (stdout += part.toString()))
    child.stderr.on('data', (part: Buffer) => (stderr += part.toString()))
    child.once('error', reject)
    child.once('exit', (code) => (code === 0 ? resolve({ stdout, stderr }) : reject(new Error(`${command} exited ${code}: ${stderr}`))))
  })
}

