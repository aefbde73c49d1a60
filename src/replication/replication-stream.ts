/**
 * Owns the replication slot and the streaming connection (DESIGN: replication/). Turns
 * pgoutput messages into whole `Transaction`s, hands them on in commit order with
 * backpressure, and acknowledges to PostgreSQL only the LSN the caller says is durable.
 * When the connection drops it reconnects with backoff and resumes from the durable LSN.
 */
import pg from 'pg'
import { LogicalReplicationService } from 'pg-logical-replication'
import type { Logger } from '../log.js'
import { formatLsn, parseLsn, type Lsn } from '../pg/lsn.js'
import { outputSettingsOptions } from '../pg/output-settings.js'
import type { PgoutputMessage, RelationMessage } from './pgoutput-messages.js'
import { TextPgoutputPlugin } from './pgoutput-plugin.js'
import type { Change, Transaction } from './transaction.js'

export interface ReplicationSink {
  /** The next committed transaction; the stream waits for the returned promise. */
  onTransaction(tx: Transaction): Promise<void> | void
  /** PostgreSQL has sent everything before `walEnd` and no transaction is open. */
  onIdle(walEnd: Lsn): void
}

export const REPLICATION_STATUS = { stopped: 'stopped', connecting: 'connecting', streaming: 'streaming' } as const
export type ReplicationStatus = (typeof REPLICATION_STATUS)[keyof typeof REPLICATION_STATUS]

export interface ReplicationStreamOptions {
  readonly connectionString: string
  readonly slot: string
  readonly publication: string
  /** Where to resume: the durable LSN of storage. */
  readonly resumeFrom: () => Lsn
  readonly sink: ReplicationSink
  readonly log: Logger
}

const MIN_BACKOFF_MS = 250
/** Stop reading from the socket while this many messages wait to be handled. */
const PAUSE_AT = 10_000
const RESUME_AT = 1_000
const MAX_BACKOFF_MS = 10_000

export class ReplicationStream {
  readonly #options: ReplicationStreamOptions
  readonly #relations = new Map<number, RelationMessage>()
  #service: LogicalReplicationService | undefined
  #status: ReplicationStatus = REPLICATION_STATUS.stopped
  #stopping = false
  #backoffMs = MIN_BACKOFF_MS
  #reconnectTimer: NodeJS.Timeout | undefined
  #open: { xid: number; finalLsn: Lsn; changes: Change[] } | undefined
  #acknowledged: Lsn = 0n as Lsn
  #lastError: string | undefined
  #queue: Promise<void> = Promise.resolve()
  #queued = 0
  readonly #statusListeners = new Set<(status: ReplicationStatus) => void>()

  constructor(options: ReplicationStreamOptions) {
    this.#options = options
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

  /** Creates the slot when missing, then starts streaming; resolves once the stream runs. */
  async start(): Promise<void> {
    this.#stopping = false
    await this.#ensureSlot()
    await new Promise<void>((resolve, reject) => {
      const off = this.onStatus((status) => {
        if (status === REPLICATION_STATUS.streaming) {
          off()
          resolve()
        }
      })
      this.#connect().catch((error: unknown) => {
        off()
        reject(error)
      })
    })
  }

  /** Tells PostgreSQL that everything up to `durable` is safe (the slot may release it). */
  acknowledge(durable: Lsn): void {
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

  async #ensureSlot(): Promise<void> {
    const client = new pg.Client({ connectionString: this.#options.connectionString })
    await client.connect()
    try {
      const existing = await client.query('SELECT 1 FROM pg_replication_slots WHERE slot_name = $1', [this.#options.slot])
      if (existing.rowCount === 0) {
        await client.query(`SELECT pg_create_logical_replication_slot($1, 'pgoutput')`, [this.#options.slot])
        this.#options.log.info({ slot: this.#options.slot }, 'created replication slot')
      }
    } finally {
      await client.end()
    }
  }

  async #connect(): Promise<void> {
    this.#setStatus(REPLICATION_STATUS.connecting)
    this.#open = undefined
    const service = new LogicalReplicationService(
      { connectionString: this.#options.connectionString, options: outputSettingsOptions() },
      { acknowledge: { auto: false, timeoutSeconds: 0 }, flowControl: { enabled: false } },
    )
    this.#service = service
    this.#queue = Promise.resolve()
    this.#queued = 0
    service.on('start', () => {
      this.#backoffMs = MIN_BACKOFF_MS
      this.#lastError = undefined
      this.#setStatus(REPLICATION_STATUS.streaming)
    })
    // Messages and keepalives go through one queue, so "idle at walEnd" is only ever
    // reported after every transaction before walEnd has been handed on.
    service.on('data', (_lsn: string, message: PgoutputMessage) => this.#enqueue(service, () => this.#onMessage(message)))
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

  #enqueue(service: LogicalReplicationService, task: () => Promise<void> | void): void {
    this.#queued++
    if (this.#queued === PAUSE_AT) socketOf(service)?.pause()
    this.#queue = this.#queue
      .then(async () => {
        if (service === this.#service) await task()
      })
      .then(
        () => {
          this.#queued--
          if (this.#queued === RESUME_AT) socketOf(service)?.resume()
        },
        (error: unknown) => this.#onFailure(service, error),
      )
  }

  async #onMessage(message: PgoutputMessage): Promise<void> {
    switch (message.tag) {
      case 'begin':
        this.#open = { xid: message.xid, finalLsn: message.finalLsn, changes: [] }
        return
      case 'relation':
        this.#relations.set(message.oid, message)
        return
      case 'insert':
      case 'update':
      case 'delete': {
        const relation = this.#relations.get(message.relationOid)
        if (!this.#open || !relation) throw new Error(`pgoutput: ${message.tag} outside a transaction or for an unknown relation`)
        if (message.tag === 'insert') this.#open.changes.push({ kind: 'insert', relation, record: message.tuple })
        else if (message.tag === 'update') this.#open.changes.push({ kind: 'update', relation, old: message.old, record: message.tuple })
        else this.#open.changes.push({ kind: 'delete', relation, old: message.old })
        return
      }
      case 'truncate': {
        const relations = message.relationOids.map((oid) => this.#relations.get(oid)).filter((r) => r !== undefined)
        this.#open?.changes.push({ kind: 'truncate', relations })
        return
      }
      case 'commit': {
        const open = this.#open
        this.#open = undefined
        if (!open) return
        await this.#options.sink.onTransaction({
          xid: open.xid,
          commitLsn: message.commitLsn,
          endLsn: message.endLsn,
          changes: open.changes,
        })
        return
      }
      case 'other':
        return
    }
  }

  #sendStatus(service = this.#service): void {
    // The library reports "lsn + 1" as flushed; PostgreSQL expects the end of what is safe.
    if (service && this.#acknowledged > 0n) void service.acknowledge(formatLsn((this.#acknowledged - 1n) as Lsn))
  }

  #onFailure(service: LogicalReplicationService, error: unknown): void {
    if (service !== this.#service || this.#stopping) return
    this.#service = undefined
    this.#lastError = error instanceof Error ? error.message : String(error)
    this.#options.log.warn(
      { err: this.#lastError, retryInMs: this.#backoffMs },
      'replication connection lost; reconnecting. If this repeats, check that PostgreSQL is up and the slot exists.',
    )
    void service.destroy().catch(() => undefined)
    this.#setStatus(REPLICATION_STATUS.connecting)
    this.#reconnectTimer = setTimeout(() => {
      this.#connect().catch((e: unknown) => this.#onFailure(this.#service ?? service, e))
    }, this.#backoffMs)
    this.#backoffMs = Math.min(this.#backoffMs * 2, MAX_BACKOFF_MS)
  }

  #setStatus(status: ReplicationStatus): void {
    if (this.#status === status) return
    this.#status = status
    for (const listener of this.#statusListeners) listener(status)
  }
}

/** The library keeps its socket private; pausing it is how backpressure reaches PostgreSQL. */
function socketOf(service: LogicalReplicationService): { pause(): void; resume(): void } | undefined {
  const connection = (service as unknown as { _connection?: { stream?: { pause(): void; resume(): void } } })._connection
  return connection?.stream
}
