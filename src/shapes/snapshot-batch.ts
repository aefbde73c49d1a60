/**
 * Runs shapes' snapshots on a bounded number of PostgreSQL connections, many shapes of one table
 * to a snapshot (docs/ARCHITECTURE.md I21). After a deploy every user of a per-user app asks for
 * a new `user_id = k` shape at once: one transaction and one `col = ANY(…)` query for a few hundred
 * of them costs about what one of them alone does (`snapshot-plan.ts`, I30), so shapes that wait
 * for a connection are answered together when one frees up. No timer: a batch is whatever queued
 * while the previous snapshots ran.
 *
 * Fairness: only shapes with an equality index (`col = c`, `col IN (…)`, few rows each) share a
 * snapshot, at most `maxBatch` of them, and each is answered once its pack of rows is read, the
 * smallest first (I30). The others (a whole table, a range) run one to a snapshot in their own
 * lane, which never holds every connection: a large snapshot cannot keep the small ones waiting.
 *
 * A shared snapshot that PostgreSQL refuses for good (a `where` that fails on some row) fails
 * each of its shapes still waiting as a lost connection would (their clients refetch: a shape whose merge has
 * begun cannot start over, I20), and their definitions are then taken alone for a while, so
 * only the shape at fault gets its 400.
 */
import { LRUCache } from 'lru-cache'
import type pg from 'pg'
import type { Logger } from '../log.js'
import { permanentSqlState } from '../pg/permanent-errors.js'
import { takeSnapshot, type SnapshotMember, type SnapshotOutcome } from './snapshot.js'

export interface SnapshotRequest extends SnapshotMember {
  /** Shapes share a snapshot only with shapes of the same table (name and OID). */
  readonly tableKey: string
  /** Whether the shape may share a snapshot (it has an equality index). */
  readonly batchable: boolean
  /** The shape's definition key: one that was in a failed shared snapshot is taken alone. */
  readonly key: string
}

interface Waiting {
  readonly request: SnapshotRequest
  readonly settle: (outcome: SnapshotOutcome | undefined, error?: unknown) => void
  readonly signal: AbortSignal | undefined
  readonly leave: () => void
}

/** Shapes in one shared snapshot at most: bounds its SQL and the wait of its last shape. */
export const MAX_BATCH = 256

export interface SnapshotSchedulerOptions {
  readonly pool: pg.Pool
  /** Connections (snapshots running) at most; snapshots that cannot share one take at most `permits - 1`. */
  readonly permits: number
  readonly log: Logger
  readonly maxBatch?: number
  /** A snapshot query started, for this many shapes. */
  readonly onQuery?: (shapes: number) => void
}

export class SnapshotScheduler {
  readonly #pool: pg.Pool
  readonly #log: Logger
  readonly #permits: number
  readonly #lonePermits: number
  readonly #maxBatch: number
  readonly #onQuery: ((shapes: number) => void) | undefined
  readonly #queue: Waiting[] = []
  #running = 0
  #loneRunning = 0
  /** Definitions that were in a shared snapshot PostgreSQL refused for good. */
  readonly #alone = new LRUCache<string, true>({ max: 10_000, ttl: 60_000 })

  constructor(options: SnapshotSchedulerOptions) {
    this.#pool = options.pool
    this.#log = options.log
    this.#permits = options.permits
    this.#lonePermits = Math.max(1, options.permits - 1)
    this.#maxBatch = options.maxBatch ?? MAX_BATCH
    this.#onQuery = options.onQuery
  }

  /** Snapshots waiting for a connection. */
  get waiting(): number {
    return this.#queue.length
  }

  /** Whether every connection is taken (a new snapshot would wait). */
  get busy(): boolean {
    return this.#running >= this.#permits
  }

  /**
   * Takes the shape's snapshot, alone or with others; resolves with undefined when `signal`
   * aborts while it still waits (it then leaves the queue).
   */
  run(request: SnapshotRequest, signal?: AbortSignal): Promise<SnapshotOutcome | undefined> {
    if (signal?.aborted) return Promise.resolve(undefined)
    return new Promise((resolve, reject) => this.#enqueue(request, signal, (outcome, error) => (error === undefined ? resolve(outcome) : reject(error))))
  }

  #enqueue(request: SnapshotRequest, signal: AbortSignal | undefined, settle: Waiting['settle']): void {
    if (signal?.aborted) {
      settle(undefined)
      return
    }
    const leave = () => {
      const at = this.#queue.indexOf(waiting)
      if (at < 0) return
      this.#queue.splice(at, 1)
      settle(undefined)
    }
    const waiting: Waiting = { request, settle, signal, leave }
    signal?.addEventListener('abort', leave, { once: true })
    this.#queue.push(waiting)
    this.#pump()
  }

  #pump(): void {
    while (this.#running < this.#permits) {
      const batch = this.#nextBatch()
      if (!batch) return
      this.#running++
      const lone = !batch[0]!.request.batchable
      if (lone) this.#loneRunning++
      void this.#runBatch(batch).finally(() => {
        this.#running--
        if (lone) this.#loneRunning--
        this.#pump()
      })
    }
  }

  /** The oldest snapshot that may start, with the queued shapes of its table that may join it. */
  #nextBatch(): Waiting[] | undefined {
    const loneFree = this.#loneRunning < this.#lonePermits
    const at = this.#queue.findIndex((w) => w.request.batchable || loneFree)
    if (at < 0) return undefined
    const head = this.#queue[at]!
    const batch = [head]
    const shares = (w: Waiting) => w.request.batchable && !this.#alone.has(w.request.key)
    if (shares(head)) {
      for (let i = at + 1; i < this.#queue.length && batch.length < this.#maxBatch; i++) {
        const other = this.#queue[i]!
        if (shares(other) && other.request.tableKey === head.request.tableKey) batch.push(other)
      }
    }
    const taken = new Set(batch)
    for (let i = this.#queue.length - 1; i >= at; i--) if (taken.has(this.#queue[i]!)) this.#queue.splice(i, 1)
    for (const w of batch) w.signal?.removeEventListener('abort', w.leave)
    return batch
  }

  async #runBatch(batch: readonly Waiting[]): Promise<void> {
    this.#onQuery?.(batch.length)
    const done = new Set<number>()
    try {
      // A shape is answered as soon as its pack is read, not after the largest of the batch (I30).
      const outcomes = await takeSnapshot(this.#pool, batch.map((w) => w.request), this.#log, (i, outcome) => {
        done.add(i)
        batch[i]!.settle(outcome)
      })
      batch.forEach((w, i) => {
        if (!done.has(i)) w.settle(outcomes[i])
      })
    } catch (error) {
      const waiting = batch.filter((_, i) => !done.has(i))
      if (batch.length === 1 || permanentSqlState(error) === undefined) {
        for (const w of waiting) w.settle(undefined, error)
        return
      }
      this.#log.info({ shapes: batch.length, err: (error as Error).message }, 'a shared snapshot failed for good; its shapes are taken alone when asked for again')
      for (const w of waiting) {
        this.#alone.set(w.request.key, true)
        w.settle(undefined, new Error(`a snapshot shared with other shapes failed: ${(error as Error).message}`))
      }
    }
  }
}
