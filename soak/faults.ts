/**
 * The faults, each injected and then healed: after `inject` resolves the system may recover,
 * and the soak measures how long until a write made then reaches a client.
 */
import { setTimeout as sleep } from 'node:timers/promises'
import pg from 'pg'
import type { TcpProxy } from '../test/support/tcp-proxy.js'
import type { DataDisk } from './data-disk.js'
import type { SoakPostgres } from './postgres.js'
import type { Random } from './random.js'
import type { Supervisor } from './supervisor.js'
import type { Writers } from './writers.js'

export const FAULT = {
  sluiceKill: 'Sluice SIGKILL',
  sluiceTerm: 'Sluice SIGTERM',
  /** With SLUICE_WORKERS above 1: one HTTP worker process killed (the owner starts another). */
  workerKill: 'HTTP worker SIGKILL',
  pgFast: 'PostgreSQL fast restart',
  pgImmediate: 'PostgreSQL immediate restart',
  replicationCut: 'replication connection cut',
  replicationStall: 'replication connection stalled',
  clientsCut: 'clients cut mid-response',
  slotDropped: 'slot dropped',
  diskFull: 'data disk full, then freed',
} as const
export type Fault = (typeof FAULT)[keyof typeof FAULT]

/** How long a full disk waits for the large transaction to commit, and then to reach Sluice. */
const LARGE_WRITE_WAIT_MS = 120_000
const REPLICATE_WAIT_MS = 20_000

export interface FaultContext {
  readonly supervisor: Supervisor
  readonly postgres: SoakPostgres
  /** Between Sluice and PostgreSQL. */
  readonly pgProxy: TcpProxy
  /** Between the clients and Sluice. */
  readonly httpProxy: TcpProxy
  readonly disk: DataDisk | undefined
  readonly writers: Writers
  /** Database URL, direct (not through the proxy). */
  readonly databaseUrl: string
  readonly slot: string
  readonly random: Random
  /** Longest time PostgreSQL stays down or a connection stays stalled. */
  readonly maxOutageMs: number
}

/** What happened, for the report: e.g. how many connections were cut, whether Sluice exited. */
export type FaultNote = string

/** The first bytes of a replication connection's startup packet carry `replication=database`. */
export const isReplication = (firstBytes: string): boolean => firstBytes.includes('replication\0database\0')

export async function inject(fault: Fault, context: FaultContext): Promise<FaultNote> {
  const { supervisor, postgres, random } = context
  switch (fault) {
    case FAULT.sluiceKill:
      supervisor.expectExit(fault)
      await supervisor.sluice.kill()
      return ''
    case FAULT.sluiceTerm:
      supervisor.expectExit(fault)
      await supervisor.sluice.terminate()
      return ''
    case FAULT.workerKill:
      return killWorker(context)
    case FAULT.pgFast:
    case FAULT.pgImmediate:
      await postgres.stop(fault === FAULT.pgFast ? 'fast' : 'immediate')
      await sleep(random.int(200, context.maxOutageMs))
      await postgres.start()
      return ''
    case FAULT.replicationCut:
      return `${context.pgProxy.cut(isReplication)} connection(s) cut`
    case FAULT.replicationStall: {
      const ms = random.int(1_000, context.maxOutageMs)
      const stalled = context.pgProxy.stall(ms, isReplication)
      await sleep(ms)
      return `${stalled} connection(s) stalled ${ms} ms`
    }
    case FAULT.clientsCut:
      return `${context.httpProxy.cutAll()} connection(s) cut`
    case FAULT.slotDropped:
      return dropSlot(context)
    case FAULT.diskFull:
      return diskFull(context)
  }
}

/**
 * SIGKILL to one of the owner's HTTP workers, its child processes: it held only connections, so
 * its clients reconnect to the others and nothing is lost; the owner starts a replacement.
 */
function killWorker(context: FaultContext): FaultNote {
  const workers = context.supervisor.sluice.childPids()
  if (workers.length === 0) return 'no worker to kill'
  const victim = context.random.pick(workers)
  process.kill(victim, 'SIGKILL')
  return `worker ${victim} of ${workers.length} killed`
}

/** The walsender is ended and the slot dropped before Sluice reconnects (retried until it is). */
async function dropSlot(context: FaultContext): Promise<FaultNote> {
  const deadline = Date.now() + 20_000
  for (let attempt = 1; ; attempt++) {
    const client = new pg.Client({ connectionString: context.databaseUrl })
    client.on('error', () => undefined)
    try {
      await client.connect()
      await client.query(`SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = $1 AND active`, [context.slot])
      const { rows } = await client.query(`SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1`, [context.slot])
      return rows.length === 1 ? `dropped after ${attempt} attempt(s)` : 'no slot to drop'
    } catch (error) {
      if (Date.now() > deadline) return `not dropped: ${(error as Error).message}`
      await sleep(20)
    } finally {
      await client.end().catch(() => undefined)
    }
  }
}

/**
 * Fills Sluice's disk while a large transaction arrives, waits for Sluice to exit on the failed
 * write (or for the time to run out), then frees the space; the supervisor starts it again.
 */
async function diskFull(context: FaultContext): Promise<FaultNote> {
  const disk = context.disk!
  const { supervisor } = context
  const exitsBefore = supervisor.exits.length
  supervisor.expectExit(FAULT.diskFull)
  await disk.fill()
  let committedAt: number | undefined
  const writing = context.writers.large().then(
    () => void (committedAt = Date.now()),
    () => undefined,
  )
  // Until Sluice has had time to receive the large transaction (it may be far behind).
  const deadline = Date.now() + LARGE_WRITE_WAIT_MS
  const exited = () => supervisor.exits.length > exitsBefore
  while (!exited() && Date.now() < Math.min(deadline, (committedAt ?? Infinity) + REPLICATE_WAIT_MS)) await sleep(50)
  // Not yet free: Sluice's first restart attempts run against the full disk.
  await sleep(context.random.int(0, context.maxOutageMs))
  await disk.free()
  await writing
  if (!exited()) supervisor.expectExit(undefined)
  return exited() ? 'Sluice exited on the failed write' : 'no write failed while the disk was full'
}
