/**
 * Owns the replication slot and the streaming connection (docs/ARCHITECTURE.md: Data flow,
 * Replication seam). Checks the slot against storage before every connection, streams through
 * `replication-connection.ts`, queues what arrives (`task-queue.ts`), turns it into transactions
 * handed on in pieces (`transaction-assembler.ts`), and acknowledges to PostgreSQL only the LSN
 * storage says is durable (I5). When the connection drops, or a message breaks the stream's rules
 * (`stream-integrity.ts`; such a message is never applied, I18), it reconnects with backoff and
 * resumes after the last commit storage holds.
 */
import pg from 'pg'
import type { Logger } from '../log.js'
import { formatLsn, parseLsn, type Lsn } from '../pg/lsn.js'
import type { Acknowledgements } from './acknowledgements.js'
import type { ServerFrame } from './copy-both-frames.js'
import { summarizeMessage } from './message-summary.js'
import { decodePgoutput } from './pgoutput-decoder.js'
import type { PgoutputMessage } from './pgoutput-messages.js'
import { openReplicationConnection, type OpenReplicationConnection, type ReplicationConnection } from './replication-connection.js'
import type { ReplicationSink } from './replication-sink.js'
import { readSlotState, slotProblem, type SlotProblem } from './slot-check.js'
import { StreamIntegrityError } from './stream-integrity.js'
import { TaskQueue } from './task-queue.js'
import { TransactionAssembler } from './transaction-assembler.js'

export type { ReplicationSink } from './replication-sink.js'

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
  /** Opens the streaming connection; tests pass a fake. */
  readonly openConnection?: OpenReplicationConnection
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
const MAX_BACKOFF_MS = 10_000

/** A service of `server.ts` (`lifecycle.ts`): `name`, `start()` and `stop()`. */
export class ReplicationStream {
  readonly name = 'replication'
  readonly #options: ReplicationStreamOptions
  readonly #openConnection: OpenReplicationConnection
  readonly #queue: TaskQueue<ReplicationConnection>
  #connection: ReplicationConnection | undefined
  #status: ReplicationStatus = REPLICATION_STATUS.stopped
  #stopping = false
  #backoffMs = MIN_BACKOFF_MS
  #reconnectTimer: NodeJS.Timeout | undefined
  #acknowledged: Lsn = 0n as Lsn
  #lastError: string | undefined
  readonly #statusListeners = new Set<(status: ReplicationStatus) => void>()

  constructor(options: ReplicationStreamOptions) {
    this.#options = options
    this.#openConnection = options.openConnection ?? openReplicationConnection
    this.#queue = new TaskQueue({
      isCurrent: (connection) => connection === this.#connection,
      onError: (connection, error) => this.#onFailure(connection, error),
    })
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

  async stop(): Promise<void> {
    this.#stopping = true
    if (this.#reconnectTimer) clearTimeout(this.#reconnectTimer)
    const connection = this.#connection
    this.#connection = undefined
    if (connection) {
      connection.sendStatus(this.#acknowledged)
      await connection.close()
    }
    this.#setStatus(REPLICATION_STATUS.stopped)
  }

  /** Tells PostgreSQL that everything up to `durable` is safe (the slot may release it). */
  #acknowledge(durable: Lsn): void {
    if (durable <= this.#acknowledged) return
    this.#acknowledged = durable
    this.#connection?.sendStatus(durable)
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
    // Tasks of the old connection still queued are skipped (they are no longer `#connection`'s);
    // one still running (say, handing on a complete transaction) finishes first, as the new
    // connection's messages queue behind it.
    this.#queue.forgetPaused()
    const assembler = new TransactionAssembler(this.#options.sink)
    const { connectionString, slot, publication, log } = this.#options
    const startLsn = this.#options.resumeFrom()
    log.info({ slot, resumeFrom: formatLsn(startLsn) }, 'starting replication')
    const connection = this.#openConnection(
      { connectionString, slot, publication, startLsn, acknowledged: this.#acknowledged },
      {
        onStart: () => {
          this.#backoffMs = MIN_BACKOFF_MS
          this.#lastError = undefined
          this.#setStatus(REPLICATION_STATUS.streaming)
        },
        onFrame: (frame) => this.#onFrame(connection, assembler, frame),
        onEnd: (error) => this.#onFailure(connection, error),
      },
    )
    this.#connection = connection
  }

  /**
   * Messages and keepalives go through one queue, so "idle at walEnd" is only ever reported
   * after every transaction before walEnd has been handed on.
   */
  #onFrame(connection: ReplicationConnection, assembler: TransactionAssembler, frame: ServerFrame): void {
    switch (frame.kind) {
      case 'xlog': {
        const message = decodePgoutput(frame.message)
        this.#queue.push(connection, () => this.#apply(assembler, frame.walStart, message))
        return
      }
      case 'keepalive':
        if (frame.replyRequested) connection.sendStatus(this.#acknowledged)
        this.#queue.push(connection, () => {
          if (!assembler.inTransaction) this.#options.sink.onIdle(frame.walEnd)
        })
        return
      case 'unknown': {
        const message = { tag: 'invalid', reason: frame.reason, bytes: frame.bytes } as const
        this.#queue.push(connection, () => this.#apply(assembler, undefined, message))
        return
      }
    }
  }

  #apply(assembler: TransactionAssembler, walStart: Lsn | undefined, message: PgoutputMessage): Promise<void> | void {
    try {
      return assembler.apply(message)
    } catch (error) {
      if (error instanceof StreamIntegrityError) this.#reportViolation(walStart, message, error)
      throw error
    }
  }

  #reportViolation(walStart: Lsn | undefined, message: PgoutputMessage, error: StreamIntegrityError): void {
    this.#options.log.error(
      {
        violation: error.violation,
        lsn: walStart === undefined ? undefined : formatLsn(walStart),
        message: summarizeMessage(message),
        resumeFrom: formatLsn(this.#options.resumeFrom()),
      },
      'replication stream broke its protocol; the message is not applied: dropping the connection and resuming after the last commit storage holds. ' +
        'If this repeats, look for a proxy or pooler between Sluice and PostgreSQL.',
    )
  }

  #onFailure(connection: ReplicationConnection, error: unknown): void {
    if (connection !== this.#connection || this.#stopping) return
    this.#connection = undefined
    void connection.close()
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
