/**
 * The router's way into storage: hands each transaction's entries to storage as one batch
 * (storage groups the batches that queue meanwhile into one LMDB transaction, I6), wakes the
 * shapes' readers once a batch is readable, and acknowledges to PostgreSQL only once it is durable
 * (docs/ARCHITECTURE.md I5). Commits finish in order; the stream is made to wait while too many
 * entries or commits are in flight (I11). WAL with no changes for any shape still moves the
 * acknowledged position, at most once a second, so the slot does not hold it.
 */
import { maxLsn, type Lsn } from '../pg/lsn.js'
import type { ShapeAppend, ShapeLogStore } from '../storage/shape-log-store.js'
import type { ShapeNotifier } from './shape-notifier.js'

export type CommitStore = Pick<ShapeLogStore, 'commit' | 'stage' | 'discardStaged' | 'flushed' | 'committedLsn' | 'durableLsn'>

export interface CommitPipelineOptions {
  readonly store: CommitStore
  readonly notifier: Pick<ShapeNotifier, 'notify'>
  readonly acknowledge: (durable: Lsn) => void
  /**
   * A storage write failed (disk full, I/O error). Later batches may already be queued, so
   * carrying on could make storage skip a transaction: the owner must stop the process.
   */
  readonly onStorageFailure: (error: unknown) => void
  /** The clock idle commits are spaced by (default `Date.now`). */
  readonly now?: () => number
}

/**
 * Log entries handed to storage and not yet committed before the stream is made to wait. Room
 * for several storage transactions, so routing goes on while one is written to disk.
 */
export const MAX_ENTRIES_IN_FLIGHT = 50_000
/** … and commits, so that transactions with no entries for any shape cannot pile up either. */
export const MAX_COMMITS_IN_FLIGHT = 1_000
export const IDLE_COMMIT_EVERY_MS = 1_000

interface InFlight {
  committed: Promise<void>
  readonly entries: number
}

export class CommitPipeline {
  readonly #options: CommitPipelineOptions
  readonly #now: () => number
  /** End LSN of the last transaction (or idle position) taken in; replays before it are skipped. */
  #accepted: Lsn
  /** The LSN of the last batch handed to storage: every transaction up to it is in that batch or before. */
  #handed: Lsn
  /** Commits not yet known to be done, oldest first. */
  readonly #inFlight: InFlight[] = []
  #entriesInFlight = 0
  #lastCommit: Promise<void> = Promise.resolve()
  #lastIdleCommitMs = 0
  #idlePending: Lsn | undefined
  #idleTimer: NodeJS.Timeout | undefined

  constructor(options: CommitPipelineOptions) {
    this.#options = options
    this.#now = options.now ?? Date.now
    this.#accepted = options.store.committedLsn
    this.#handed = this.#accepted
  }

  /** End LSN of the last transaction taken in: a transaction committing before it is a replay. */
  get accepted(): Lsn {
    return this.#accepted
  }

  /**
   * A replicated transaction's entries (its last ones, if some were staged). PostgreSQL is told of
   * `endLsn` once the batch is durable. Resolves once there is room for the next transaction.
   */
  async commitTransaction(endLsn: Lsn, appends: readonly ShapeAppend[]): Promise<void> {
    this.#accepted = maxLsn(this.#accepted, endLsn)
    void this.#commit(appends, endLsn, true)
    // Commits finish in order: waiting for the oldest frees room without draining the pipeline.
    while (this.#entriesInFlight > MAX_ENTRIES_IN_FLIGHT || this.#inFlight.length > MAX_COMMITS_IN_FLIGHT) await this.#inFlight[0]!.committed
  }

  /**
   * Transactions' entries (one storage batch, I6) for a shape that held them until its snapshot started (or, with
   * subqueries, until a move-in's rows were read). It moves no LSN and acknowledges nothing: the
   * transaction's own batch does that, and such a shape's log is made whole after a restart in
   * its own way (one whose snapshot is not complete is dropped and its clients refetch; one with
   * subqueries takes its differences, docs/ARCHITECTURE.md I25). Resolves once readers can read it.
   */
  commitReleased(...appends: ShapeAppend[]): Promise<void> {
    return this.#commit(appends, this.#handed, false)
  }

  /** The first entries of a transaction still being received, so it never sits in memory whole. */
  async stage(appends: readonly ShapeAppend[]): Promise<void> {
    // A failed write is a storage failure like a failed commit, not a replication problem.
    await this.#options.store.stage(appends).catch((error: unknown) => this.#options.onStorageFailure(error))
  }

  /** A transaction whose first entries were staged will be received again from its start. */
  discardStaged(): void {
    this.#options.store.discardStaged()
  }

  /** WAL up to `walEnd` holds nothing for any shape: acknowledge it, at most once a second. */
  idle(walEnd: Lsn): void {
    if (walEnd <= this.#accepted && walEnd <= this.#options.store.committedLsn) return
    const waitMs = IDLE_COMMIT_EVERY_MS - (this.#now() - this.#lastIdleCommitMs)
    if (waitMs > 0) {
      // Too soon for another idle commit, but do not drop this position: PostgreSQL sends the
      // next keepalive only after we acknowledge (or after wal_sender_timeout / 2), so the
      // durable LSN — and the slot — would otherwise stall behind WAL that holds no changes.
      this.#idlePending = walEnd
      this.#idleTimer ??= setTimeout(() => {
        this.#idleTimer = undefined
        const pending = this.#idlePending
        this.#idlePending = undefined
        if (pending !== undefined) this.idle(pending)
      }, waitMs)
      return
    }
    this.#lastIdleCommitMs = this.#now()
    this.#accepted = maxLsn(this.#accepted, walEnd)
    void this.#commit([], walEnd, true)
  }

  /** Storage started over at `durable` (a new slot or cluster): forget what was accepted. */
  reset(durable: Lsn): void {
    this.#cancelIdleCommit()
    this.#accepted = durable
    this.#handed = durable
  }

  /** No more commits after this (the stream has stopped); resolves when the last one is durable. */
  stop(): Promise<void> {
    this.#cancelIdleCommit()
    return this.flushed()
  }

  /** Resolves when everything handed to storage so far is durable. */
  async flushed(): Promise<void> {
    await this.#lastCommit
    await this.#options.store.flushed()
  }

  #cancelIdleCommit(): void {
    if (this.#idleTimer) clearTimeout(this.#idleTimer)
    this.#idleTimer = undefined
    this.#idlePending = undefined
  }

  #commit(appends: readonly ShapeAppend[], through: Lsn, acknowledged: boolean): Promise<void> {
    const { store, notifier, acknowledge } = this.#options
    const failed = (error: unknown) => this.#options.onStorageFailure(error)
    let entries = 0
    for (const append of appends) entries += append.entries.length
    const record: InFlight = { committed: Promise.resolve(), entries }
    const settled = () => {
      const at = this.#inFlight.indexOf(record)
      if (at >= 0) this.#inFlight.splice(at, 1)
      this.#entriesInFlight -= entries
    }
    this.#handed = maxLsn(this.#handed, through)
    record.committed = store.commit({ durableLsn: through, appends }).then(({ durable }) => {
      settled()
      // Readers are told as soon as they can read it; PostgreSQL only once it is on disk.
      for (const append of appends) notifier.notify(append.shapeId)
      // A flush can fail for any commit (lmdb's flush promise is the last write's), so every one is watched.
      durable.then(() => {
        if (acknowledged) acknowledge(store.durableLsn)
      }, failed)
    }, (error: unknown) => {
      settled()
      failed(error)
    })
    this.#inFlight.push(record)
    this.#entriesInFlight += entries
    this.#lastCommit = record.committed
    return record.committed
  }
}
