/**
 * One soak run: PostgreSQL of its own, Sluice as a supervised child process behind two proxies
 * (clients → HTTP proxy → Sluice → PostgreSQL proxy → PostgreSQL), writers, every kind of
 * follower, the history checker, and faults on a seeded schedule — rounds of every kind of
 * fault, each round shuffled. At the end every fault is healed, the writers stop,
 * and every follower must reach the final state of its shape.
 */
import { setTimeout as sleep } from 'node:timers/promises'
import { createWriteStream } from 'node:fs'
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import pg from 'pg'
import { ChildSluice } from '../test/support/child-sluice.js'
import { startTcpProxy, type TcpProxy } from '../test/support/tcp-proxy.js'
import { Checker } from './checker.js'
import { ClientErrors } from './client-errors.js'
import { DataDisk } from './data-disk.js'
import { FAULT, inject, type Fault, type FaultContext } from './faults.js'
import { startFollower, type SoakFollower } from './followers.js'
import { History } from './history.js'
import { SoakPostgres } from './postgres.js'
import { Random } from './random.js'
import { ResourceSampler } from './resources.js'
import { CANARY_ID, createSchema } from './schema.js'
import { createSoakDir, removeSoakDir, sweepSoakDirs } from './soak-dirs.js'
import { FOLLOWERS, type SoakScale } from './scale.js'
import { Supervisor } from './supervisor.js'
import { Writers } from './writers.js'

export interface SoakOptions {
  readonly seed: number
  readonly durationMs: number
  readonly scale: SoakScale
  /** SLUICE_WORKERS: 1, one process; above 1, the owner and its HTTP workers (and the kill-worker fault). */
  readonly workers: number
  /** SOAK_FAULTS: only these kinds, to replay a violation's faults more often; every kind that applies otherwise. */
  readonly faults?: readonly Fault[]
  readonly log: (line: string) => void
}

export interface FaultRecord {
  readonly fault: Fault
  readonly atMs: number
  readonly note: string
  /** From the fault healed to a write made then seen by a client; undefined: never. */
  readonly recoveryMs: number | undefined
}

export interface SoakResult {
  readonly options: SoakOptions
  readonly ranMs: number
  readonly history: History
  readonly checker: Checker
  readonly followers: readonly SoakFollower[]
  readonly faults: readonly FaultRecord[]
  readonly faultKinds: readonly Fault[]
  readonly clientErrors: ClientErrors
  readonly supervisor: Supervisor
  readonly resources: ResourceSampler
  readonly writersFailed: number
  readonly historyReadFailures: number
  /** Why the disk-full fault was left out, if it was. */
  readonly diskNote: string | undefined
}

const SLOT = 'soak'
const LOG_DIR = 'test-output'
const RECOVERY_TIMEOUT_MS = 90_000
const CONVERGENCE_TIMEOUT_MS = 120_000
const CLEANUP_STEP_MS = 30_000

export async function runSoak(options: SoakOptions): Promise<SoakResult> {
  const { scale, log } = options
  const random = new Random(options.seed)
  for (const dir of await sweepSoakDirs()) log(`removed ${dir}, left mounted by a soak run that never cleaned up`)
  const root = await createSoakDir()
  const cleanup: (() => Promise<unknown>)[] = [() => removeSoakDir(root)]
  try {
    const postgres = await SoakPostgres.create(join(root, 'pg'))
    cleanup.unshift(() => postgres.stop('fast'))
    const databaseUrl = await createDatabase(postgres.url)
    const pgProxy = await startTcpProxy(() => ({ host: '127.0.0.1', port: postgres.port }))
    cleanup.unshift(() => pgProxy.close())
    const mounted = await DataDisk.mount(join(root, 'data'), scale.diskMb)
    const disk = typeof mounted === 'string' ? undefined : mounted
    if (!disk) log(`disk-full fault left out: ${mounted}`)

    const sluice = new ChildSluice({
      DATABASE_URL: viaProxy(databaseUrl, pgProxy),
      SLUICE_DATA_DIR: join(root, 'data', 'sluice'),
      SLUICE_REPLICATION_SLOT: SLOT,
      SLUICE_PUBLICATION: SLOT,
      SLUICE_CHUNK_BYTES: String(64 * 1024),
      SLUICE_LONG_POLL_MS: '5000',
      SLUICE_SSE_TIMEOUT_MS: '15000',
      SLUICE_SHUTDOWN_TIMEOUT_MS: '3000',
      LOG_LEVEL: 'info',
      SLUICE_WORKERS: String(options.workers),
    })
    // Sluice's own log, whole, next to the report: what it did around a violation.
    await mkdir(LOG_DIR, { recursive: true })
    const sluiceLog = createWriteStream(join(LOG_DIR, `soak-${options.seed}-sluice.log`))
    cleanup.unshift(() => new Promise((resolve) => sluiceLog.end(resolve)))
    sluice.onOutput = (chunk) => void sluiceLog.write(chunk)
    const startedAt = Date.now()
    const supervisor = new Supervisor(sluice, startedAt)
    await supervisor.start()
    cleanup.unshift(() => supervisor.stop())
    const httpProxy = await startTcpProxy(() => ({ host: '127.0.0.1', port: sluice.port }))
    cleanup.unshift(() => httpProxy.close())

    const history = new History()
    const checker = new Checker(history, startedAt)
    const clientErrors = new ClientErrors()
    const writers = new Writers({ url: databaseUrl, random: random.fork(), largeRows: scale.largeRows, rareEveryMs: scale.rareEveryMs })
    writers.start(scale.smallWriters)
    cleanup.unshift(() => writers.stop())
    const followerContext = { baseUrl: httpProxy.url, checker, errors: clientErrors, maxPauseMs: scale.maxPauseMs }
    const followers = FOLLOWERS[scale.followers].map(([kind, spec], i) => startFollower(kind, spec, i + 1, { ...followerContext, random: random.fork() }))
    cleanup.unshift(async () => followers.forEach((f) => f.stop()))
    const probe = followers[0]!

    const running = { on: true }
    let historyReadFailures = 0
    const checking = loop(running, 300, async () => {
      const readStartedAt = Date.now()
      try {
        await history.refresh(databaseUrl)
        checker.checkPending(readStartedAt)
      } catch (error) {
        if (historyReadFailures++ === 0 || /clock/.test((error as Error).message)) log(`history read failed: ${(error as Error).message}`)
      }
    })
    const resources = new ResourceSampler()
    const sampling = loop(running, 1_000, () => resources.sample(sluice.pid, Date.now() - startedAt))

    const faultKinds = faultKindsFor(options.workers, disk !== undefined).filter((fault) => options.faults?.includes(fault) ?? true)
    const context: FaultContext = { supervisor, postgres, pgProxy, httpProxy, disk, writers, databaseUrl, slot: SLOT, random: random.fork(), maxOutageMs: scale.maxOutageMs }
    const faults: FaultRecord[] = []
    // Rounds of every kind in a shuffled order, so kinds are injected equally often; the first
    // round is finished even past the end.
    let round = random.shuffled(faultKinds)
    const faultsEnd = startedAt + options.durationMs
    while (Date.now() < faultsEnd || faults.length < faultKinds.length) {
      await sleep(random.int(scale.faultGapMs[0], scale.faultGapMs[1]))
      if (round.length === 0) round = random.shuffled(faultKinds)
      const fault = round.shift()!
      const atMs = Date.now() - startedAt
      const note = await inject(fault, context)
      const recoveryMs = await recover(writers, probe)
      log(`${(atMs / 1000).toFixed(1)} s: ${fault}${note ? ` (${note})` : ''}; recovered in ${recoveryMs === undefined ? 'never' : `${recoveryMs} ms`}`)
      if (recoveryMs === undefined) checker.report({ kind: 'notRecovered', follower: 'probe', shape: probe.spec.name, offset: '', clock: undefined, detail: fault })
      faults.push({ fault, atMs, note, recoveryMs })
    }

    await writers.stop()
    await supervisor.running()
    await converge(checker, followers, databaseUrl, httpProxy.url)
    running.on = false
    await Promise.all([checking, sampling])
    await checker.settled()
    return {
      options,
      ranMs: Date.now() - startedAt,
      history,
      checker,
      followers,
      faults,
      faultKinds,
      clientErrors,
      supervisor,
      resources,
      writersFailed: writers.failed,
      historyReadFailures,
      diskNote: typeof mounted === 'string' ? mounted : undefined,
    }
  } finally {
    // A step that hangs (a Sluice that cannot exit) must not keep the later ones, the tmpfs's
    // unmount among them, from running.
    for (const step of cleanup) await bounded(step, CLEANUP_STEP_MS).catch((error: unknown) => log(`cleanup: ${(error as Error).message}`))
  }
}

async function bounded(step: () => Promise<unknown>, ms: number): Promise<unknown> {
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`a step did not end within ${ms} ms`)), ms)))
  try {
    return await Promise.race([step(), late])
  } finally {
    clearTimeout(timer)
  }
}

/** Every fault that applies: the disk-full one needs a disk of its own, the kill-worker one workers. */
export function faultKindsFor(workers: number, disk: boolean): Fault[] {
  return Object.values(FAULT).filter((fault) => (fault !== FAULT.diskFull || disk) && (fault !== FAULT.workerKill || workers > 1))
}

async function createDatabase(adminUrl: string): Promise<string> {
  const admin = new pg.Client({ connectionString: adminUrl })
  await admin.connect()
  await admin.query('CREATE DATABASE soak')
  await admin.end()
  const url = new URL(adminUrl)
  url.pathname = '/soak'
  const pool = new pg.Pool({ connectionString: url.toString(), max: 1 })
  await createSchema(pool)
  await pool.end()
  return url.toString()
}

function viaProxy(databaseUrl: string, proxy: TcpProxy): string {
  const url = new URL(databaseUrl)
  url.port = String(proxy.port)
  return url.toString()
}

/** Time until a write committed now reaches the probe (a plain follower of all of `accounts`). */
async function recover(writers: Writers, probe: SoakFollower): Promise<number | undefined> {
  const healedAt = Date.now()
  const deadline = healedAt + RECOVERY_TIMEOUT_MS
  const value = await writers.canary(deadline).catch(() => undefined)
  if (value === undefined) return undefined
  while (Date.now() < deadline) {
    const canary = probe.rows().get(`"public"."accounts"/"${CANARY_ID}"`)
    if (canary && Number(canary['v']) >= value) return Date.now() - healedAt
    await sleep(20)
  }
  return undefined
}

/** Every follower, woken from any pause, must come to hold its shape's final rows. */
async function converge(checker: Checker, followers: readonly SoakFollower[], databaseUrl: string, baseUrl: string): Promise<void> {
  for (const follower of followers) follower.wake()
  const deadline = Date.now() + CONVERGENCE_TIMEOUT_MS
  let waiting = [...followers]
  const differences = new Map<SoakFollower, string>()
  while (waiting.length > 0 && Date.now() < deadline) {
    await checker.history.refresh(databaseUrl).catch(() => undefined)
    waiting = waiting.filter((follower) => {
      const difference = checker.diff(follower.spec, follower.rows(), checker.finalState(follower.spec))
      differences.set(follower, difference)
      return difference !== ''
    })
    if (waiting.length > 0) await sleep(500)
  }
  checker.finalChecks = followers.length - waiting.length
  for (const follower of waiting) {
    const server = await whatTheServerHas(baseUrl, follower)
    checker.report({ kind: 'notConverged', follower: follower.name, shape: follower.spec.name, offset: '', clock: checker.history.clock, detail: `${differences.get(follower)!} [${follower.status()}] ${server}` })
  }
}

/** Whether Sluice holds what a stuck follower lacks: a plain request from its position. */
async function whatTheServerHas(baseUrl: string, follower: SoakFollower): Promise<string> {
  const position = follower.position()
  if (!position) return 'no position to ask the server from'
  const url = new URL(`${baseUrl}/v1/shape`)
  for (const [k, v] of Object.entries({ table: follower.spec.table, ...follower.spec.params, ...position })) url.searchParams.set(k, v)
  try {
    const response = await fetch(url)
    const body = await response.text()
    const changes = response.status === 200 ? (JSON.parse(body) as { key?: string }[]).filter((m) => m.key !== undefined).length : 0
    return `(the server from ${position.handle} @ ${position.offset}: ${response.status}, ${changes} changes, next offset ${response.headers.get('electric-offset')})`
  } catch (error) {
    return `(the server from ${position.handle} @ ${position.offset}: ${(error as Error).message})`
  }
}

async function loop(running: { on: boolean }, everyMs: number, step: () => Promise<void>): Promise<void> {
  while (running.on) {
    await step()
    await sleep(everyMs)
  }
}
