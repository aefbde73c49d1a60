/**
 * Owns the replication slot and the streaming connection (docs/ARCHITECTURE.md: Data flow).
 * Turns pgoutput messages into transactions, handed on in pieces as they arrive (a transaction
 * is never held whole) and in commit order with backpressure, and acknowledges to PostgreSQL
 * only the LSN the caller says is durable. When the connection drops, or a message breaks the
 * stream's rules (`stream-integrity.ts`; such a message is never applied), it reconnects with
 * backoff and resumes after the last commit storage holds.
 */
import pg from 'pg'
import { LogicalReplicationService } from 'pg-logical-replication'
import type { Service } from '../lifecycle.js'
import type { Logger } from '../log.js'
import { formatLsn, parseLsn, type Lsn } from '../pg/lsn.js'
import { outputSettingsOptions } from '../pg/output-settings.js'
import type { PgoutputMessage, RelationMessage } from './pgoutput-messages.js'
import type { Acknowledgements } from './acknowledgements.js'
import { TextPgoutputPlugin } from './pgoutput-plugin.js'
import { readSlotState, slotProblem, type SlotProblem } from './slot-check.js'
import { StreamIntegrity, StreamIntegrityError } from './stream-integrity.js'
import type { Change, TransactionBegin, TransactionCommit } from './transaction.js'

/**
 * Where transactions go, in commit order, a piece at a time: a transaction of a million rows
 * arrives as many `onChanges` calls between `onBegin` and `onCommit`, so it never has to be
 * held whole. The stream waits for each returned promise (backpressure). A new `onBegin`
 * without `onCommit` means the previous transaction will be sent again (the stream reconnected).
 */
export interface ReplicationSink {
  onBegin(begin: TransactionBegin): void
  /** The transaction's next changes; positions continue from the previous call. */
  onChanges(changes: readonly Change[]): Promise<void> | void
  onCommit(commit: TransactionCommit): Promise<void> | void
  /** PostgreSQL has sent everything before `walEnd` and no transaction is open. */
  onIdle(walEnd: Lsn): void
  /** A table's description, sent before its first change and again after its schema changes. */
  onRelation?(relation: RelationMessage): void
}

/** `waiting`: the stream ran and broke (database restarted, connection cut); reconnecting with backoff. */
export const REPLICATION_STATUS = { stopped: 'stopped', connecting: 'connecting', streaming: 'streaming', waiting: 'waiting' } as const
export type ReplicationStatus = (typeof REPLICATION_STATUS)[keyof typeof REPLICATION_STATUS]

export interface ReplicationStreamOptions {
  readonly connectionString: string
  readonly slot: string
  readonly publication: string
  /**
   * Where to resume: the last commit storage holds (committed, maybe not yet flushed; in this
   * process it will be, and a new process starts from what was flushed).
   */
  readonly resumeFrom: () => Lsn
  /** The history storage continues; checked against the slot before every connection. */
  readonly history: ReplicationHistory
  readonly sink: ReplicationSink
  /** What storage holds durably: the only LSNs acknowledged to PostgreSQL. */
  readonly acknowledgements: Acknowledgements
  readonly log: Logger
}

export interface ReplicationHistory {
  /** The cluster storage follows; undefined for a store that never connected. */
  systemIdentifier(): string | undefined
  /** A new store: remember the cluster it follows. */
  adopt(systemIdentifier: string): Promise<void>
  /** Storage cannot continue from the slot: drop every shape and continue from `startLsn`. */
  reset(systemIdentifier: string, startLsn: Lsn, problem: SlotProblem): Promise<void>
}

const MIN_BACKOFF_MS = 250
/** Changes handed on per `onChanges` call. */
const CHANGES_PER_BATCH = 2_000
/** Stop reading from the socket while this many messages wait to be handled. */
const PAUSE_AT = 10_000
const RESUME_AT = 1_000
/** Handled tasks are cut from the front of the queue once this many have piled up. */
const COMPACT_TASKS_AT = 4_096
const MAX_BACKOFF_MS = 10_000

export class ReplicationStream implements Service {
  readonly name = 'replication'
  readonly #options: ReplicationStreamOptions
  /** Relations described on the current connection (PostgreSQL describes each again on a new one). */
  readonly #relations = new Map<number, RelationMessage>()
  #integrity = new StreamIntegrity()
  #service: LogicalReplicationService | undefined
  #status: ReplicationStatus = REPLICATION_STATUS.stopped
  #stopping = false
  #backoffMs = MIN_BACKOFF_MS
  #reconnectTimer: NodeJS.Timeout | undefined
  #open: { xid: number; finalLsn: Lsn; changes: Change[] } | undefined
  #acknowledged: Lsn = 0n as Lsn
  #lastError: string | undefined
  /** Messages and keepalives to handle, in order, from `#nextTask` on (see `#enqueue`). */
  readonly #tasks: { readonly service: LogicalReplicationService; readonly task: () => Promise<void> | void }[] = []
  #nextTask = 0
  #running = false
  /** The connection whose socket was paused because too many of its messages wait. */
  #paused: LogicalReplicationService | undefined
  readonly #statusListeners = new Set<(status: ReplicationStatus) => void>()

  constructor(options: ReplicationStreamOptions) {
    this.#options = options
    options.acknowledgements.listen((durable) => this.#acknowledge(durable))
  }

  get status(): ReplicationStatus {
    return this.#status
  }

  get lastError(): string | undefined {
    return this.#lastError
  }

  onStatus(listener: (status: ReplicationStatus) => void): () => void {
    this.#statusListeners.add(listener)
    return () => this.#statusListeners.delete(listener)
  }

  /**
   * Checks the slot against storage (creating it when missing), then starts streaming;
   * resolves once the stream runs. A failure of that first check rejects; later ones retry.
   */
  async start(): Promise<void> {
    this.#stopping = false
    this.#setStatus(REPLICATION_STATUS.connecting)
    await this.#prepare()
    await new Promise<void>((resolve) => {
      const off = this.onStatus((status) => {
        if (status === REPLICATION_STATUS.streaming || status === REPLICATION_STATUS.stopped) {
          off()
          resolve()
        }
      })
      this.#subscribe()
    })
  }

  /** Tells PostgreSQL that everything up to `durable` is safe (the slot may release it). */
  #acknowledge(durable: Lsn): void {
    if (durable <= this.#acknowledged) return
    this.#acknowledged = durable
    this.#sendStatus()
  }

  async stop(): Promise<void> {
    this.#stopping = true
    if (this.#reconnectTimer) clearTimeout(this.#reconnectTimer)
    const service = this.#service
    this.#service = undefined
    if (service) {
      this.#sendStatus(service)
      await service.destroy().catch(() => undefined)
    }
    this.#setStatus(REPLICATION_STATUS.stopped)
  }

  /**
   * Verifies that the slot continues storage's history (slot-check.ts) and creates the slot
   * when missing. When it does not, storage is reset before anything is streamed.
   */
  async #prepare(): Promise<void> {
    const { slot, history, log } = this.#options
    const client = new pg.Client({ connectionString: this.#options.connectionString, connectionTimeoutMillis: 10_000 })
    client.on('error', () => undefined)
    await client.connect()
    try {
      const state = await readSlotState(client, slot)
      const stored = history.systemIdentifier()
      const problem = slotProblem(slot, state, { systemIdentifier: stored, durableLsn: this.#options.resumeFrom() })
      let exists = state.slot !== undefined
      if (problem?.dropSlot) {
        await client.query('SELECT pg_drop_replication_slot($1)', [slot])
        exists = false
      }
      let startLsn = state.slot?.confirmedFlushLsn
      if (!exists) {
        const created = await client.query<{ lsn: string }>(`SELECT lsn::text FROM pg_create_logical_replication_slot($1, 'pgoutput')`, [slot])
        startLsn = parseLsn(created.rows[0]!.lsn)
        log.info({ slot, at: created.rows[0]!.lsn }, 'created replication slot')
      }
      if (problem) {
        log.error({ slot, problem: problem.kind }, problem.message)
        await history.reset(state.systemIdentifier, startLsn ?? (0n as Lsn), problem)
        this.#acknowledged = 0n as Lsn
      } else if (stored === undefined) {
        await history.adopt(state.systemIdentifier)
      }
    } finally {
      await client.end().catch(() => undefined)
    }
  }

  /** One reconnection attempt: check the slot again (it may be gone), then stream. */
  async #reconnect(): Promise<void> {
    this.#reconnectTimer = undefined
    if (this.#stopping) return
    try {
      await this.#prepare()
    } catch (error) {
      this.#retryLater(error)
      return
    }
    if (!this.#stopping) this.#subscribe()
  }

  #subscribe(): void {
    this.#open = undefined
    this.#relations.clear()
    this.#integrity = new StreamIntegrity()
    const service = new LogicalReplicationService(
      { connectionString: this.#options.connectionString, options: outputSettingsOptions() },
      { acknowledge: { auto: false, timeoutSeconds: 0 }, flowControl: { enabled: false } },
    )
    this.#service = service
    // Tasks of the old connection still queued are skipped (they are no longer `#service`'s);
    // one still running (say, handing on a complete transaction) finishes first, as the
    // new connection's messages queue behind it.
    this.#paused = undefined
    service.on('start', () => {
      this.#backoffMs = MIN_BACKOFF_MS
      this.#lastError = undefined
      this.#setStatus(REPLICATION_STATUS.streaming)
      // The library skips a CopyData frame it does not know with a console warning: a message lost.
      copyDataOf(service)?.on('copyData', ({ chunk }: { chunk: Buffer }) => {
        if (chunk[0] === XLOG_DATA || chunk[0] === KEEPALIVE) return
        const message = { tag: 'invalid', reason: `unknown CopyData frame 0x${(chunk[0] ?? 0).toString(16)}`, bytes: chunk } as const
        this.#enqueue(service, () => this.#onMessage('?', message))
      })
    })
    // Messages and keepalives go through one queue, so "idle at walEnd" is only ever
    // reported after every transaction before walEnd has been handed on.
    service.on('data', (lsn: string, message: PgoutputMessage) => this.#enqueue(service, () => this.#onMessage(lsn, message)))
    service.on('heartbeat', (lsn: string, _timestamp: number, shouldRespond: boolean) => {
      if (shouldRespond) this.#sendStatus()
      this.#enqueue(service, () => {
        if (!this.#open) this.#options.sink.onIdle(parseLsn(lsn))
      })
    })
    service.on('error', (error: Error) => this.#onFailure(service, error))
    const resumeFrom = this.#options.resumeFrom()
    this.#options.log.info({ slot: this.#options.slot, resumeFrom: formatLsn(resumeFrom) }, 'starting replication')
    service
      .subscribe(new TextPgoutputPlugin({ publication: this.#options.publication }), this.#options.slot, formatLsn(resumeFrom))
      .then(
        () => this.#onFailure(service, new Error('replication stream ended')),
        (error: unknown) => this.#onFailure(service, error),
      )
  }

  /**
   * Runs tasks in arrival order; one that returns a promise holds back the rest until it
   * settles. Most messages (a row change joining its transaction) finish at once, so they are
   * handled right away rather than each through a promise: messages left waiting in a queue
   * live long enough to be promoted by the garbage collector, which cost more than handling them.
   */
  #enqueue(service: LogicalReplicationService, task: () => Promise<void> | void): void {
    this.#tasks.push({ service, task })
    if (this.#paused === undefined && this.#tasks.length - this.#nextTask >= PAUSE_AT) {
      socketOf(service)?.pause()
      this.#paused = service
    }
    if (!this.#running) void this.#runTasks()
  }

  async #runTasks(): Promise<void> {
    this.#running = true
    while (this.#nextTask < this.#tasks.length) {
      const { service, task } = this.#tasks[this.#nextTask]!
      this.#tasks[this.#nextTask++] = undefined!
      // A task of a connection that was replaced is dropped: the new one sends it again.
      if (service === this.#service) {
        try {
          const pending = task()
          if (pending) await pending
        } catch (error) {
          this.#onFailure(service, error)
        }
      }
      if (this.#paused !== undefined && this.#tasks.length - this.#nextTask <= RESUME_AT) {
        if (this.#paused === this.#service) socketOf(this.#paused)?.resume()
        this.#paused = undefined
      }
      if (this.#nextTask >= COMPACT_TASKS_AT) {
        this.#tasks.splice(0, this.#nextTask)
        this.#nextTask = 0
      }
    }
    this.#tasks.length = 0
    this.#nextTask = 0
    this.#running = false
  }

  /** Returns a promise only when the message is handed on (most are not: see `#enqueue`). */
  #onMessage(lsn: string, message: PgoutputMessage): Promise<void> | void {
    try {
      this.#integrity.check(message)
    } catch (error) {
      if (error instanceof StreamIntegrityError) this.#reportViolation(lsn, message, error)
      throw error
    }
    switch (message.tag) {
      case 'begin':
        this.#open = { xid: message.xid, finalLsn: message.finalLsn, changes: [] }
        this.#options.sink.onBegin({ xid: message.xid, commitLsn: message.finalLsn })
        return
      case 'relation':
        this.#relations.set(message.oid, message)
        // In stream order: shapes whose table changed stop before the first change under the new schema.
        this.#options.sink.onRelation?.(message)
        return
      // From here on the integrity check has made sure of the open transaction and the relations.
      case 'insert':
      case 'update':
      case 'delete': {
        const open = this.#open!
        const relation = this.#relations.get(message.relationOid)!
        if (message.tag === 'insert') open.changes.push({ kind: 'insert', relation, record: message.tuple })
        else if (message.tag === 'update') open.changes.push({ kind: 'update', relation, old: message.old, record: message.tuple })
        else open.changes.push({ kind: 'delete', relation, old: message.old })
        if (open.changes.length >= CHANGES_PER_BATCH) return this.#handOn(open)
        return
      }
      case 'truncate': {
        const relations = message.relationOids.map((oid) => this.#relations.get(oid)!)
        this.#open!.changes.push({ kind: 'truncate', relations })
        return
      }
      case 'commit': {
        const open = this.#open!
        this.#open = undefined
        return this.#commit(open, { xid: open.xid, commitLsn: message.commitLsn, endLsn: message.endLsn })
      }
      case 'other':
      case 'invalid':
        return
    }
  }

  /** What the broken message looked like, without its row values. */
  #reportViolation(lsn: string, message: PgoutputMessage, error: StreamIntegrityError): void {
    const seen =
      message.tag === 'invalid'
        ? { bytes: message.bytes.length, head: message.bytes.subarray(0, 32).toString('hex') }
        : summarize(message)
    this.#options.log.error(
      { violation: error.violation, lsn, message: seen, resumeFrom: formatLsn(this.#options.resumeFrom()) },
      'replication stream broke its protocol; the message is not applied: dropping the connection and resuming from the durable LSN. ' +
        'If this repeats, look for a proxy or pooler between Sluice and PostgreSQL.',
    )
  }

  async #commit(open: { changes: Change[] }, commit: TransactionCommit): Promise<void> {
    await this.#handOn(open)
    await this.#options.sink.onCommit(commit)
  }

  async #handOn(open: { changes: Change[] }): Promise<void> {
    if (open.changes.length === 0) return
    const changes = open.changes
    open.changes = []
    await this.#options.sink.onChanges(changes)
  }

  #sendStatus(service = this.#service): void {
    // The library reports "lsn + 1" as flushed; PostgreSQL expects the end of what is safe.
    if (service && this.#acknowledged > 0n) void service.acknowledge(formatLsn((this.#acknowledged - 1n) as Lsn))
  }

  #onFailure(service: LogicalReplicationService, error: unknown): void {
    if (service !== this.#service || this.#stopping) return
    this.#service = undefined
    void service.destroy().catch(() => undefined)
    this.#retryLater(error)
  }

  #retryLater(error: unknown): void {
    if (this.#stopping) return
    this.#lastError = error instanceof Error ? error.message : String(error)
    this.#options.log.warn(
      { err: this.#lastError, retryInMs: this.#backoffMs },
      'replication connection lost; reconnecting. Shapes keep being served from storage; new shapes get 503 meanwhile. ' +
        'If this repeats, check that PostgreSQL is up and reachable at DATABASE_URL.',
    )
    this.#setStatus(REPLICATION_STATUS.waiting)
    if (this.#reconnectTimer) clearTimeout(this.#reconnectTimer)
    this.#reconnectTimer = setTimeout(() => void this.#reconnect(), this.#backoffMs)
    this.#backoffMs = Math.min(this.#backoffMs * 2, MAX_BACKOFF_MS)
  }

  #setStatus(status: ReplicationStatus): void {
    if (this.#status === status) return
    this.#status = status
    for (const listener of this.#statusListeners) listener(status)
  }
}

const XLOG_DATA = 0x77
const KEEPALIVE = 0x6b

/** A message's tag and positions; row values stay out of logs. */
function summarize(message: Exclude<PgoutputMessage, { tag: 'invalid' }>): Record<string, unknown> {
  switch (message.tag) {
    case 'begin':
      return { tag: message.tag, xid: message.xid, commitLsn: String(message.finalLsn) }
    case 'commit':
      return { tag: message.tag, commitLsn: String(message.commitLsn), endLsn: String(message.endLsn) }
    case 'relation':
      return { tag: message.tag, oid: message.oid, columns: message.columns.length }
    case 'insert':
      return { tag: message.tag, relation: message.relationOid, columns: message.tuple.length }
    case 'update':
    case 'delete':
      return { tag: message.tag, relation: message.relationOid, oldKind: message.oldKind, columns: (message.tag === 'update' ? message.tuple : message.old).length }
    case 'truncate':
      return { tag: message.tag, relations: message.relationOids }
    case 'other':
      return { tag: message.tag }
  }
}

/** The library's connection, to see every CopyData frame (it reads only the ones it knows). */
function copyDataOf(service: LogicalReplicationService): { on(event: 'copyData', listener: (message: { chunk: Buffer }) => void): void } | undefined {
  return (service as unknown as { _connection?: { on(event: 'copyData', listener: (message: { chunk: Buffer }) => void): void } })._connection
}

/** The library keeps its socket private; pausing it is how backpressure reaches PostgreSQL. */
function socketOf(service: LogicalReplicationService): { pause(): void; resume(): void } | undefined {
  const connection = (service as unknown as { _connection?: { stream?: { pause(): void; resume(): void } } })._connection
  return connection?.stream
}
