/**
 * latency: commit → event at the client over Server-Sent Events, p50 and p99, with 1,000 SSE
 * clients while a writer commits 1,000 transactions per second (goal: p99 ≤ 25 ms), under two
 * loads:
 *
 * - fan-out: every client on one shape, so every transaction goes to all 1,000 (a million
 *   events a second). Beside it stands a floor measured in the same run, the same load served by
 *   a raw broadcaster, so that a slow machine shows as a slow floor too.
 * - a shape each: client `k` follows `id = k` and transaction `n` updates row `(n % 1,000) + 1`,
 *   so each transaction goes to the one client whose row it changed (per-user shapes).
 *
 * - Sluice runs in its own process (`node --import tsx src/main.ts`), as in largetx.
 * - The clients run in child processes of their own (`support/sse-clients.ts`; BENCH_SSE_CLIENT_PROCS, default 2), as raw
 *   `node:http` requests `offset=-1&live=true&live_sse=true` that scan the `data:` text for the
 *   `seq` column instead of parsing every event, so that the figure is Sluice's, not the
 *   clients'. Every stream is open and has had its first up-to-date before the writer starts.
 * - The writer (this process, a few connections) commits one `UPDATE … SET seq = <n>` per
 *   transaction, paced at the rate, and records when each commit was acknowledged.
 * - A client records when the chunk carrying `seq = n` arrived; latency = arrival − commit
 *   acknowledged, both on `performance.timeOrigin + performance.now()`, with each client process's
 *   clock offset to this one measured over IPC (smallest round trip of several) and removed.
 * - The floor: once Sluice has stopped (the two never compete for the CPU), the same writer,
 *   rate, table and number of fresh client processes run again against
 *   `bench/support/raw-sse-broadcaster.ts` — pgoutput on a slot of its own, made only now so that
 *   it starts past Sluice's transactions, and one coalesced write per socket per event-loop turn.
 *   Its p50 and p99 are the rows' baselines.
 *
 * Scale down with BENCH_SSE_CLIENTS (1,000), BENCH_LATENCY_SECONDS (10) and BENCH_LATENCY_RATE
 * (1,000 transactions/s); both runs use them. Run alone: `node --import tsx bench/sse-latency.ts`.
 */
import { fork, spawn, type ChildProcess } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { cpus, loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import pg from 'pg'
import { freePort } from '../src/pg/free-port.js'
import { createBaselineSlot, type BaselineSlot } from './support/baseline-decoder.js'
import { followToUpToDate } from './support/chunk-follower.js'
import { startBenchCluster, type BenchCluster } from './support/cluster.js'
import { cpuOfTree, machineBusy } from './support/cpu.js'
import type { ScenarioContext } from './support/scenario.js'
import { BUCKET_MS, BUCKETS, clock, rowOfTransaction, type ClientResult, type FromClients, type RowShapes, type ToClients } from './support/sse-client-protocol.js'
import { formatCount, progress, sleep, waitUntil } from './support/timing.js'
import { round2, type BenchRow } from './support/report.js'
import { envInt } from './support/env.js'

const SELF = fileURLToPath(import.meta.url)
const ROOT = fileURLToPath(new URL('..', import.meta.url))
const CLIENTS_SCRIPT = fileURLToPath(new URL('./support/sse-clients.ts', import.meta.url))
const TABLE = 'latency_items'
const TABLE_ROWS = 10
const SLOT = 'sluice_bench_latency'
/** The floor's slot and publication (one name for both, as `createBaselineSlot` makes them). */
const FLOOR_SLOT = 'sluice_bench_latency_floor'
const FLOOR_SCRIPT = 'bench/support/raw-sse-broadcaster.ts'
const FLOOR_LABEL = 'floor (raw pgoutput → node:http SSE broadcaster, same load)'
const WRITER_CONNECTIONS = 8

/** The load, the same for Sluice and for the floor. */
export interface Load {
  readonly clients: number
  readonly procs: number
  readonly seconds: number
  readonly rate: number
}

/** A server measured: a process of its own, streaming to `url`. */
interface Served {
  readonly name: string
  readonly child: ChildProcess
  readonly url: string
  /** Why the process ended, once it has (with the end of its stderr). */
  failure(): string | undefined
  /** The end of its stdout, when piped. */
  output(): string
}

/** CPU during the writes, in % of one CPU. */
export interface CpuSplit {
  readonly server: number
  readonly clients: readonly number[]
  readonly writer: number
  /** PostgreSQL, and whatever else shares the machine. */
  readonly others: number
  /** 1-minute load average at the end. */
  readonly load: number
}

export interface Measured {
  readonly merged: ClientResult
  readonly p50: number
  readonly p99: number
  readonly written: Written
  readonly cpu: CpuSplit
}

export async function runSseLatencyBench(ctx?: ScenarioContext): Promise<BenchRow[]> {
  const clients = envInt('BENCH_SSE_CLIENTS', 1_000)
  const load: Load = {
    clients,
    procs: Math.min(clients, envInt('BENCH_SSE_CLIENT_PROCS', 2)),
    seconds: envInt('BENCH_LATENCY_SECONDS', 10),
    rate: envInt('BENCH_LATENCY_RATE', 1_000),
  }

  // The harness gives external scenarios no cluster: start one when there is none.
  let own: BenchCluster | undefined
  const cluster = ctx?.cluster ?? (own = await startBenchCluster())
  const db = await cluster.createDatabase('bench_latency')
  const dataDir = await mkdtemp(join(tmpdir(), 'sluice-bench-latency-'))
  let sluice: Served | undefined
  let floor: Served | undefined
  let floorSlot: BaselineSlot | undefined
  const writers: pg.Client[] = []
  try {
    await db.pool.query(`CREATE TABLE ${TABLE} (id integer PRIMARY KEY, seq bigint NOT NULL, title text NOT NULL)`)
    await db.pool.query(`INSERT INTO ${TABLE} SELECT g, 0, 'row ' || g FROM generate_series(1, ${TABLE_ROWS}) g`)
    // One writer for both runs.
    for (let i = 0; i < WRITER_CONNECTIONS; i++) {
      const client = new pg.Client({ connectionString: db.url })
      await client.connect()
      writers.push(client)
    }

    // One process, as the floor is: `workers` compares one with two.
    sluice = await startSluice(db.url, dataDir, clients, 1)
    progress('run 1 of 3: Sluice, every client on one shape')
    const measured = await measure(sluice, load, writers, 'fan-out')
    // A row per client for the second load (the first shape takes them in; nobody reads it now),
    // and seq back to 0: a seq the first run left in a snapshot must not count as an arrival.
    await db.pool.query(`UPDATE ${TABLE} SET seq = 0`)
    await db.pool.query(`INSERT INTO ${TABLE} SELECT g, 0, 'row ' || g FROM generate_series(${TABLE_ROWS + 1}, ${clients}) g`)
    progress('run 2 of 3: Sluice, a shape for each client')
    const ownShapes = await measure(sluice, load, writers, 'shape-each')
    // Stopped before the floor starts, so that the two never share the CPU.
    await stop(sluice.child, 15_000)

    // Made only now, the slot starts past Sluice's transactions: the floor's clients see their own.
    floorSlot = await createBaselineSlot(db.url, db.pool, TABLE, FLOOR_SLOT)
    floor = await startFloor(db.url)
    progress(`run 3 of 3: the ${FLOOR_LABEL}, every client on one shape`)
    const floorMeasured = await measure(floor, load, writers, 'fan-out')
    return [...toRows(measured, floorMeasured, load), ...shapeEachRows(ownShapes, load)]
  } finally {
    for (const w of writers) await w.end().catch(() => undefined)
    if (sluice) await stop(sluice.child, 15_000)
    if (floor) await stop(floor.child, 5_000)
    if (floorSlot) await dropFloorSlot(db.pool, floorSlot).catch((error: unknown) => progress(`floor slot not dropped: ${String(error)}`))
    await rm(dataDir, { recursive: true, force: true })
    await db.drop()
    await own?.stop()
  }
}

async function startSluice(url: string, dataDir: string, clients: number, workers: number): Promise<Served> {
  const port = await freePort()
  const base = `http://127.0.0.1:${port}`
  const sluice = spawnServer('Sluice', 'src/main.ts', `${base}/v1/shape?table=${TABLE}&offset=-1&live=true&live_sse=true`, 'ignore', {
    DATABASE_URL: url,
    PORT: String(port),
    HOST: '127.0.0.1',
    SLUICE_DATA_DIR: dataDir,
    SLUICE_REPLICATION_SLOT: SLOT,
    SLUICE_PUBLICATION: SLOT,
    // No stream reaches the ~60 s reconnect during the run.
    SLUICE_SSE_TIMEOUT_MS: '600000',
    SLUICE_MAX_LIVE_CONNECTIONS: String(Math.max(10_000, clients * 2)),
    SLUICE_WORKERS: String(workers),
    LOG_LEVEL: 'warn',
  })
  await waitUntil('Sluice to serve', async () => {
    const failure = sluice.failure()
    if (failure) throw new Error(failure)
    return fetch(`${base}/v1/health`).then((r) => r.ok, () => false)
  }, 60_000, 100)
  // The shape exists before the clients come, so they all read one stored snapshot.
  await followToUpToDate(`${base}/v1/shape`, { table: TABLE })
  return sluice
}

/**
 * Sluice with `workers` HTTP worker processes (`SLUICE_WORKERS`), every client on one shape: the
 * fan-out run of this bench alone, for `bench/workers.ts`.
 */
export async function measureFanOut(db: { readonly url: string; readonly pool: pg.Pool }, workers: number, load: Load): Promise<Measured> {
  const dataDir = await mkdtemp(join(tmpdir(), 'sluice-bench-fan-out-'))
  const writers: pg.Client[] = []
  let sluice: Served | undefined
  try {
    await db.pool.query(`DROP TABLE IF EXISTS ${TABLE}`)
    await db.pool.query(`CREATE TABLE ${TABLE} (id integer PRIMARY KEY, seq bigint NOT NULL, title text NOT NULL)`)
    await db.pool.query(`INSERT INTO ${TABLE} SELECT g, 0, 'row ' || g FROM generate_series(1, ${TABLE_ROWS}) g`)
    for (let i = 0; i < WRITER_CONNECTIONS; i++) {
      const client = new pg.Client({ connectionString: db.url })
      await client.connect()
      writers.push(client)
    }
    sluice = await startSluice(db.url, dataDir, load.clients, workers)
    return await measure(sluice, load, writers, 'fan-out')
  } finally {
    for (const w of writers) await w.end().catch(() => undefined)
    if (sluice) await stop(sluice.child, 15_000)
    await db.pool.query(`SELECT pg_drop_replication_slot('${SLOT}') WHERE EXISTS (SELECT FROM pg_replication_slots WHERE slot_name = '${SLOT}')`)
    await rm(dataDir, { recursive: true, force: true })
  }
}

async function startFloor(url: string): Promise<Served> {
  const port = await freePort()
  // The same path as Sluice's clients ask for; the broadcaster answers any.
  const floor = spawnServer('the floor broadcaster', FLOOR_SCRIPT, `http://127.0.0.1:${port}/v1/shape?table=${TABLE}&offset=-1&live=true&live_sse=true`, 'pipe', {
    DATABASE_URL: url,
    PORT: String(port),
    FLOOR_SLOT,
  })
  // `ready` comes once it serves and its slot streams.
  await waitUntil('the floor broadcaster to stream', () => {
    const failure = floor.failure()
    if (failure) throw new Error(failure)
    return floor.output().includes('ready\n')
  }, 60_000, 50)
  return floor
}

/** `node --import tsx <script>` at the repository root, keeping the ends of its output for errors. */
function spawnServer(name: string, script: string, url: string, stdout: 'ignore' | 'pipe', env: Record<string, string>): Served {
  // BENCH_CHILD_NODE_OPTIONS: extra Node flags for the server measured, Sluice's or the floor's
  // (`--cpu-prof --cpu-prof-dir=…`), so the two can be profiled under the same load.
  const extra = (process.env['BENCH_CHILD_NODE_OPTIONS'] ?? '').split(' ').filter((flag) => flag !== '')
  const child = spawn(process.execPath, ['--import', 'tsx', ...extra, script], { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', stdout, 'pipe'] })
  let stderr = ''
  let output = ''
  let exit: string | undefined
  child.stderr!.on('data', (part: Buffer) => (stderr = (stderr + part.toString()).slice(-4000)))
  child.stdout?.on('data', (part: Buffer) => (output = (output + part.toString()).slice(-4000)))
  child.on('exit', (code, signal) => (exit = `${name} exited (${signal ?? code}): ${stderr}`))
  return { name, child, url, failure: () => exit, output: () => output }
}

/**
 * One run: fresh client processes, all streams live, then the writer at the rate; the clients'
 * arrivals against the writer's acknowledged commits.
 */
async function measure(server: Served, load: Load, writers: pg.Client[], kind: 'fan-out' | 'shape-each'): Promise<Measured> {
  const { clients, procs, seconds, rate } = load
  // Rows the writer spreads its updates over; with a shape each, one per client.
  const rows = kind === 'fan-out' ? TABLE_ROWS : clients
  const total = rate * seconds
  const children: ChildProcess[] = []
  try {
    // Clients: spread over the client processes, all live before the first write.
    progress(`${formatCount(clients)} SSE clients in ${procs} client process${procs > 1 ? 'es' : ''}, streaming from offset -1`)
    for (let i = 0; i < procs; i++) {
      children.push(fork(CLIENTS_SCRIPT, [], { execArgv: ['--import', 'tsx'], serialization: 'advanced', stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }))
    }
    const capacity = total + 1
    const shares = children.map((_, i) => Math.floor(clients / procs) + (i < clients % procs ? 1 : 0))
    const opened = await Promise.all(
      children.map((child, i) => {
        const first = 1 + shares.slice(0, i).reduce((a, b) => a + b, 0)
        const own: RowShapes | undefined = kind === 'shape-each' ? { first, count: rows } : undefined
        return ask(child, { type: 'open', url: server.url, clients: shares[i]!, capacity, rows: own }, 'opened', 120_000)
      }),
    )
    const live = opened.reduce((n, o) => n + o.live, 0)
    const failed = opened.reduce((n, o) => n + o.failed, 0)
    if (failed > 0) progress(`${failed} streams failed to open: ${opened.find((o) => o.firstError)?.firstError}`)
    if (live === 0) throw new Error(`no SSE stream from ${server.name} came live`)
    progress(`${formatCount(live)} streams live (each had its first up-to-date)`)

    // Each client process's clock against this one: the pong with the smallest round trip.
    const offsets: { offsetMs: number; rttMs: number }[] = []
    for (const child of children) offsets.push(await clockOffset(child))
    progress(`client clock offsets ${offsets.map((o) => `${o.offsetMs.toFixed(3)} ms (±${(o.rttMs / 2).toFixed(3)})`).join(', ')}`)

    // The writer: `rate` transactions per second for `seconds`, each one UPDATE of one row.
    const commits = new Float64Array(capacity).fill(Number.NaN)
    const before = await sampleCpu(server, children)
    progress(`writing ${formatCount(total)} transactions at ${formatCount(rate)}/s over ${WRITER_CONNECTIONS} connections`)
    const written = await write(writers, commits, { rate, total, seconds, rows })
    const cpu = cpuSplit(before, await sampleCpu(server, children), written.ms)
    progress(
      `${formatCount(written.committed)} committed in ${(written.ms / 1000).toFixed(2)} s (${written.perSecond.toFixed(0)} tx/s` +
        `${written.errors > 0 ? `, ${written.errors} failed` : ''}, ${written.lateStarts} started > 5 ms late)`,
    )
    const failure = server.failure()
    if (failure) throw new Error(`during the run: ${failure}`)

    const results = await Promise.all(
      children.map((child, i) =>
        ask(child, { type: 'collect', commits, committed: written.committed, offsetMs: offsets[i]!.offsetMs, waitMs: 20_000 }, 'result', 60_000),
      ),
    )
    const merged = merge(results.map((r) => r.result))
    const p50 = percentile(merged, 0.5)
    const p99 = percentile(merged, 0.99)
    const expected = kind === 'fan-out' ? merged.clients * written.committed : written.committed
    progress(
      `p50 ${p50.toFixed(2)} ms, p99 ${p99.toFixed(2)} ms, max ${merged.max.toFixed(1)} ms over ${formatCount(merged.samples)} of ${formatCount(expected)} expected events; ` +
        `${merged.complete}/${merged.clients} clients got every transaction; CPU: ${cpuText(server.name, cpu)}`,
    )
    return { merged, p50, p99, written, cpu }
  } finally {
    await Promise.all(children.map((child) => stop(child, 5_000)))
  }
}

interface CpuSample {
  readonly server: number
  readonly machine: number
  readonly self: NodeJS.CpuUsage
  readonly clients: readonly number[]
}

async function sampleCpu(server: Served, children: readonly ChildProcess[]): Promise<CpuSample> {
  const [serverMs, machine, clients] = await Promise.all([
    cpuOfTree(server.child.pid!),
    machineBusy(),
    Promise.all(children.map((child) => ask(child, { type: 'cpu' }, 'cpu', 60_000).then((c) => c.userMs + c.systemMs))),
  ])
  return { server: serverMs, machine, self: process.cpuUsage(), clients }
}

function cpuSplit(before: CpuSample, after: CpuSample, ms: number): CpuSplit {
  const pct = (spent: number) => (spent / ms) * 100
  const server = pct(after.server - before.server)
  const clients = after.clients.map((c, i) => pct(c - before.clients[i]!))
  const writer = pct((after.self.user - before.self.user + after.self.system - before.self.system) / 1000)
  // Everything else on the machine: PostgreSQL, and whatever else shares it.
  const others = Math.max(0, pct(after.machine - before.machine) - server - writer - clients.reduce((a, b) => a + b, 0))
  return { server, clients, writer, others, load: loadavg()[0]! }
}

function cpuText(name: string, cpu: CpuSplit): string {
  return (
    `${name} ${cpu.server.toFixed(0)}%, client processes ${cpu.clients.map((c) => `${c.toFixed(0)}%`).join(' + ')}, ` +
    `writer ${cpu.writer.toFixed(0)}%, PostgreSQL and the rest of the machine ${cpu.others.toFixed(0)}% (of ${cpus().length * 100}%)`
  )
}

function toRows(sluice: Measured, floor: Measured, load: Load): BenchRow[] {
  const { merged, written } = sluice
  const load1 = `${formatCount(merged.clients)} SSE clients on one shape, ${written.perSecond.toFixed(0)} tx/s`
  const baseline = (value: number) => ({ label: FLOOR_LABEL, value: round2(value), unit: 'ms' })
  const described =
    `${formatCount(written.committed)} one-row UPDATE transactions in ${(written.ms / 1000).toFixed(1)} s ` +
    `(target ${formatCount(load.rate)}/s, ${WRITER_CONNECTIONS} writer connections, fsync on); ` +
    `${delivery(merged)}; max ${merged.max.toFixed(1)} ms` +
    `; CPU during the run: ${cpuText('Sluice', sluice.cpu)}` +
    `; load average ${sluice.cpu.load.toFixed(1)} at the end; Sluice, PostgreSQL, writer and clients share the machine` +
    `. Floor, run after Sluice stopped (${load.procs} fresh client process${load.procs > 1 ? 'es' : ''}): ` +
    `${formatCount(floor.written.committed)} transactions at ${floor.written.perSecond.toFixed(0)} tx/s; ${delivery(floor.merged)}; ` +
    `max ${floor.merged.max.toFixed(1)} ms; CPU: ${cpuText('broadcaster', floor.cpu)}; load average ${floor.cpu.load.toFixed(1)} at the end`
  return [
    {
      scenario: 'latency',
      measure: `commit → SSE event at the client, p50 (${load1})`,
      value: round2(sluice.p50),
      unit: 'ms',
      baseline: baseline(floor.p50),
      note: `p99 ${sluice.p99.toFixed(2)} ms, max ${merged.max.toFixed(1)} ms; floor p99 ${floor.p99.toFixed(2)} ms, max ${floor.merged.max.toFixed(1)} ms`,
    },
    {
      scenario: 'latency',
      measure: `commit → SSE event at the client, p99 (${load1})`,
      value: round2(sluice.p99),
      unit: 'ms',
      baseline: baseline(floor.p99),
      // On the figure, not the ratio: the floor is context, the bound is absolute.
      goal: { on: 'value', op: '<=', target: 25 },
      note: described,
    },
  ]
}

/** The per-user load: absolute figures (a raw broadcaster has no shapes to route by). */
function shapeEachRows(measured: Measured, load: Load): BenchRow[] {
  const { merged, written } = measured
  const load1 = `${formatCount(merged.clients)} SSE clients on a shape each, ${written.perSecond.toFixed(0)} tx/s`
  const described =
    `${formatCount(written.committed)} one-row UPDATE transactions in ${(written.ms / 1000).toFixed(1)} s, transaction n on row (n mod ${formatCount(load.clients)}) + 1, ` +
    `client k following \`id = k\`: each transaction reaches one client; ${delivery(merged)}; max ${merged.max.toFixed(1)} ms` +
    `; CPU during the run: ${cpuText('Sluice', measured.cpu)}; load average ${measured.cpu.load.toFixed(1)} at the end`
  return [
    {
      scenario: 'latency',
      measure: `commit → SSE event at the client, p50 (${load1})`,
      value: round2(measured.p50),
      unit: 'ms',
      note: `p99 ${measured.p99.toFixed(2)} ms, max ${merged.max.toFixed(1)} ms`,
    },
    {
      scenario: 'latency',
      measure: `commit → SSE event at the client, p99 (${load1})`,
      value: round2(measured.p99),
      unit: 'ms',
      goal: { on: 'value', op: '<=', target: 25 },
      note: described,
    },
  ]
}

function delivery(r: ClientResult): string {
  return (
    `${r.complete}/${r.clients} clients received every transaction` +
    (r.ended > 0 ? `, ${r.ended} streams ended early` : '') +
    (r.missing > 0 ? `, ${formatCount(r.missing)} events missing` : '') +
    (r.negatives > 0 ? `, ${formatCount(r.negatives)} events arrived before the writer saw their commit acknowledged (counted as 0)` : '')
  )
}

/** The floor's process has ended; its walsender may take a moment to release the slot. */
async function dropFloorSlot(pool: pg.Pool, slot: BaselineSlot): Promise<void> {
  const active = async () =>
    ((await pool.query(`SELECT 1 FROM pg_replication_slots WHERE slot_name = $1 AND active`, [FLOOR_SLOT])).rowCount ?? 0) > 0
  try {
    await waitUntil('the floor slot to be released', async () => !(await active()), 10_000, 50)
  } catch {
    await pool.query(`SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = $1 AND active`, [FLOOR_SLOT])
    await waitUntil('the floor slot to be released', async () => !(await active()), 5_000, 50)
  }
  await slot.drop()
  const left = await pool.query(
    `SELECT 1 FROM pg_replication_slots WHERE slot_name = $1 UNION ALL SELECT 1 FROM pg_publication WHERE pubname = $1`,
    [FLOOR_SLOT],
  )
  if ((left.rowCount ?? 0) > 0) throw new Error('still there after the drop')
}

interface Written {
  readonly committed: number
  readonly errors: number
  readonly ms: number
  readonly perSecond: number
  readonly lateStarts: number
}

/**
 * Transaction `n` (1-based) is due `n / rate` seconds after the start; it starts on the first
 * free connection once due. `commits[n]` is when its commit was acknowledged.
 */
async function write(
  writers: pg.Client[],
  commits: Float64Array,
  { rate, total, seconds, rows }: { rate: number; total: number; seconds: number; rows: number },
): Promise<Written> {
  const free = [...writers]
  let next = 1
  let committed = 0
  let errors = 0
  let lateStarts = 0
  let lastAck = 0
  let inFlight = 0
  const start = clock()
  const deadline = start + seconds * 1000 + 5_000
  let settled: () => void = () => {}
  const issue = (n: number, client: pg.Client) => {
    inFlight++
    client.query(`UPDATE ${TABLE} SET seq = $1 WHERE id = $2`, [n, rowOfTransaction(n, rows)]).then(
      () => {
        const now = clock()
        commits[n] = now
        lastAck = now
        committed++
      },
      () => errors++,
    ).finally(() => {
      inFlight--
      free.push(client)
      settled()
    })
  }
  while (next <= total && clock() < deadline) {
    const now = clock()
    const due = Math.min(total, Math.floor(((now - start) * rate) / 1000) + 1)
    while (next <= due && free.length > 0) {
      if (now - (start + ((next - 1) * 1000) / rate) > 5) lateStarts++
      issue(next++, free.pop()!)
    }
    await new Promise<void>((resolve) => {
      settled = resolve
      setTimeout(resolve, 1)
    })
  }
  while (inFlight > 0) await sleep(5)
  const ms = lastAck - start
  return { committed, errors, ms, perSecond: ms > 0 ? (committed * 1000) / ms : 0, lateStarts }
}

function merge(results: readonly ClientResult[]): ClientResult {
  const histogram = new Uint32Array(BUCKETS)
  const overflow: number[] = []
  let samples = 0
  let max = 0
  let negatives = 0
  let complete = 0
  let clients = 0
  let ended = 0
  let missing = 0
  for (const r of results) {
    for (let i = 0; i < BUCKETS; i++) histogram[i]! += r.histogram[i]!
    // One at a time: under load the slow arrivals can outnumber what a spread call takes.
    for (const ms of r.overflow) overflow.push(ms)
    samples += r.samples
    max = Math.max(max, r.max)
    negatives += r.negatives
    complete += r.complete
    clients += r.clients
    ended += r.ended
    missing += r.missing
  }
  overflow.sort((a, b) => a - b)
  return { histogram, overflow, samples, max, negatives, complete, clients, ended, missing }
}

/** The latency below which `q` of the samples fall (bucket upper bound, 10 µs resolution). */
function percentile(r: ClientResult, q: number): number {
  const rank = Math.max(1, Math.ceil(q * r.samples))
  let seen = 0
  for (let i = 0; i < BUCKETS; i++) {
    seen += r.histogram[i]!
    if (seen >= rank) return (i + 1) * BUCKET_MS
  }
  return r.overflow[rank - seen - 1] ?? r.max
}

async function clockOffset(child: ChildProcess): Promise<{ offsetMs: number; rttMs: number }> {
  let best = { offsetMs: 0, rttMs: Number.POSITIVE_INFINITY }
  for (let i = 0; i < 30; i++) {
    const sent = clock()
    const pong = await ask(child, { type: 'ping', sent }, 'pong', 10_000)
    const received = clock()
    const rttMs = received - sent
    if (rttMs < best.rttMs) best = { offsetMs: pong.now - (sent + received) / 2, rttMs }
    await sleep(2)
  }
  return best
}

/** Sends `message` and waits for the child's next message of type `type`. */
function ask<T extends FromClients['type']>(child: ChildProcess, message: ToClients, type: T, timeoutMs: number): Promise<Extract<FromClients, { type: T }>> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => done(new Error(`client process gave no ${type} within ${timeoutMs} ms`)), timeoutMs)
    const onMessage = (m: FromClients) => {
      if (m.type === type) done(undefined, m as Extract<FromClients, { type: T }>)
    }
    const onExit = (code: number | null) => done(new Error(`client process exited (${code}) before ${type}`))
    const done = (error?: Error, value?: Extract<FromClients, { type: T }>) => {
      clearTimeout(timer)
      child.off('message', onMessage)
      child.off('exit', onExit)
      if (error) reject(error)
      else resolve(value!)
    }
    child.on('message', onMessage)
    child.once('exit', onExit)
    child.send(message)
  })
}

async function stop(child: ChildProcess, graceMs: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = new Promise((resolve) => child.once('exit', resolve))
  child.kill('SIGTERM')
  if ((await Promise.race([exited, sleep(graceMs).then(() => 'timeout')])) === 'timeout') {
    child.kill('SIGKILL')
    await exited
  }
}

if (process.argv[1] === SELF) {
  const rows = await runSseLatencyBench()
  for (const row of rows) process.stdout.write(`${JSON.stringify(row, null, 2)}\n`)
}
