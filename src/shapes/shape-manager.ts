/**
 * The registry of shapes: definition → shape, handle → shape. Creates shapes (table joins the
 * publication, then the router holds the shape's transactions, then the snapshot runs — in
 * that order, docs/ARCHITECTURE.md I2), reloads them at start, and drops them.
 */
import { LRUCache } from 'lru-cache'
import type pg from 'pg'
import { InvalidRequestError, MustRefetchError, OverloadedError, UnavailableError } from '../errors.js'
import type { Logger } from '../log.js'
import type { Lsn } from '../pg/lsn.js'
import type { TableInfo } from '../pg/introspect.js'
import type { ServeOptions } from '../pg/servable.js'
import { TableReplication } from '../pg/table-replication.js'
import { SUBQUERY_HEADERS } from '../protocol/constants.js'
import type { ShapeLogStore, SnapshotInfo } from '../storage/shape-log-store.js'
import { ActiveShape } from './active-shape.js'
import { snapshotEndMessage } from './change-encoder.js'
import { compactDefinition, restoreStoredShapes } from './stored-shapes.js'
import { StoredWheres, WHERE_FAMILIES } from './stored-wheres.js'
import { definitionKey, LOG_MODES, type ShapeDefinition } from './shape-definition.js'
import { qualifiedName } from '../pg/sql.js'
import type { TableName } from '../pg/table-name.js'
import { bindShape, type BoundShape, type RequestWhere } from './shape-filter.js'
import type { ShapeHandle } from './shape-handle.js'
import type { ShapeNotifier } from './shape-notifier.js'
import type { ShapeRouter } from './shape-router.js'
import { SnapshotScheduler } from './snapshot-batch.js'
import { equalityRowsOf } from './snapshot-plan.js'
import { ShapeSubqueries } from './subquery/shape-subqueries.js'
import { resumeShape } from './subquery/resume.js'
import { snapshotFailure } from './snapshot-failure.js'
import { PROGRESS_EVERY_MS } from './snapshot.js'
import { parseSnapshotText, visibilityOf, type Visibility } from './xid-visibility.js'

export interface ShapeManagerOptions {
  readonly store: ShapeLogStore
  readonly pool: pg.Pool
  readonly notifier: ShapeNotifier
  readonly publication: string
  readonly log: Logger
  /** Beyond this many shapes the least recently used one is dropped to make room. */
  readonly maxShapes: number
  /** Snapshots running at once; the next ones queue. */
  readonly maxConcurrentSnapshots: number
  /** Snapshots allowed to queue; past that a new shape is refused with 503. */
  readonly snapshotQueueLength: number
  /** Which tables may be served; a stored shape of a table no longer servable is dropped at start. */
  readonly serve: ServeOptions
  readonly onSnapshotTaken?: (seconds: number) => void
  /** A snapshot query started for this many shapes (`snapshot-batch.ts`). */
  readonly onSnapshotQuery?: (shapes: number) => void
  /** A snapshot missed transactions already replicated and is taken again (`unconfirmed-commits.ts`). */
  readonly onSnapshotRetaken?: () => void
  /** A snapshot found its table dropped and created again, or altered: what is cached about it is stale. */
  readonly onTableChanged?: (table: TableName) => void
}

/**
 * How long a definition whose snapshot PostgreSQL refused for good is answered its 400 at once:
 * long enough that a bare EventSource, which reconnects a second after its stream ends, gets the
 * 400 (and stops) instead of starting the same failing snapshot again and again.
 */
const FAILURE_MEMORY_MS = 5_000

/**
 * How often routed transactions are checked against a fresh snapshot so the router can forget
 * those PostgreSQL shows (the memory this bounds grows with the transactions routed meanwhile).
 */
const CONFIRM_COMMITS_EVERY_MS = 1_000

export class ShapeManager {
  readonly #options: ShapeManagerOptions
  readonly #byKey = new Map<string, ActiveShape>()
  readonly #byHandle = new Map<string, ActiveShape>()
  readonly #creating = new Map<string, Promise<ActiveShape>>()
  /** The table is in the publication before a snapshot (docs/ARCHITECTURE.md I2). */
  readonly #replication: TableReplication
  /** Shapes in order of last use, least recent first (a Map keeps insertion order). */
  readonly #recent = new Map<ActiveShape, true>()
  readonly #snapshots: SnapshotScheduler
  /** Shapes whose snapshot waits for a slot, to take out of the queue when dropped. */
  readonly #queued = new Map<ActiveShape, AbortController>()
  /** Snapshots in progress, so stopping can wait for them to let go of storage. */
  readonly #running = new Set<Promise<void>>()
  /** Definitions whose snapshot failed for good, by definition key (see FAILURE_MEMORY_MS). */
  readonly #failures = new LRUCache<string, InvalidRequestError>({ max: 1_000, ttl: FAILURE_MEMORY_MS })
  /** Visibility by snapshot: the shapes of one shared snapshot share one (docs/ARCHITECTURE.md I21). */
  readonly #visibilities = new WeakMap<SnapshotInfo, Visibility>()
  readonly #wheres = new StoredWheres(WHERE_FAMILIES)
  #stopping = false
  #router: ShapeRouter | undefined
  #confirmTimer: NodeJS.Timeout | undefined
  #confirming: Promise<void> | undefined

  constructor(options: ShapeManagerOptions) {
    this.#options = options
    this.#replication = new TableReplication({ db: options.pool, publication: options.publication, log: options.log })
    this.#snapshots = new SnapshotScheduler({ pool: options.pool, permits: options.maxConcurrentSnapshots, log: options.log, ...(options.onSnapshotQuery ? { onQuery: options.onSnapshotQuery } : {}) })
  }

  /** Loads stored shapes into `router`; drops those whose snapshot never finished. */
  async start(router: ShapeRouter): Promise<void> {
    this.#router = router
    this.#confirmTimer = setInterval(() => {
      if (!this.#confirming && router.unconfirmedCommits > 0) this.#confirming = this.#confirmCommits(router).finally(() => (this.#confirming = undefined))
    }, CONFIRM_COMMITS_EVERY_MS).unref()
    const { store, log, pool, serve } = this.#options
    const resuming: ActiveShape[] = []
    for (const restored of await restoreStoredShapes({ store, pool, serve, log })) {
      this.#activate(restored.shape)
      if (restored.resuming) resuming.push(restored.shape)
    }
    const durable = store.committedLsn
    for (const shape of resuming) this.#track(this.#resume(shape, router, durable))
    log.info({ shapes: this.#byHandle.size, resuming: resuming.length }, 'shapes loaded')
  }

  async #resume(shape: ActiveShape, router: ShapeRouter, durable: Lsn): Promise<void> {
    const leave = new AbortController()
    this.#queued.set(shape, leave)
    try {
      const resumed = await resumeShape(
        shape,
        durable,
        {
          store: this.#options.store,
          snapshots: this.#snapshots,
          missedCommits: (visibility) => {
            router.confirmCommits(visibility)
            return router.commitsMissedBy(shape, visibility)
          },
          resynced: (visibility, append) => router.resynced(shape, visibility, append),
          log: this.#options.log,
        },
        leave.signal,
      ).finally(() => this.#queued.delete(shape))
      if (this.#stopping || shape.dropped) return
      if (!resumed) {
        await this.drop(shape, 'its subqueries could not be resumed')
        return
      }
      // Its differences and held transactions are readable before any up-to-date is answered (I16).
      await router.flushed()
      if (this.#stopping || shape.dropped) return
      shape.completeSnapshot()
      this.#options.notifier.notify(shape.stored.id)
    } catch (error) {
      if (this.#stopping) return
      this.#options.log.warn({ handle: shape.stored.handle, err: (error as Error).message }, 'resuming a shape with subqueries failed; it is dropped and its clients refetch')
      await this.drop(shape, 'resuming its subqueries failed')
    }
  }

  #track(running: Promise<void>): void {
    this.#running.add(running)
    void running.finally(() => this.#running.delete(running))
  }

  get size(): number {
    return this.#byHandle.size
  }

  /** Snapshots waiting for a connection. */
  get snapshotsWaiting(): number {
    return this.#snapshots.waiting
  }

  /** Looking a shape up counts as using it (for SLUICE_MAX_SHAPES eviction). */
  byHandle(handle: ShapeHandle): ActiveShape | undefined {
    return this.#touch(this.#byHandle.get(handle))
  }

  byDefinition(definition: ShapeDefinition): ActiveShape | undefined {
    return this.#touch(this.#byKey.get(definitionKey(definition)))
  }

  #touch(shape: ActiveShape | undefined): ActiveShape | undefined {
    if (shape && !shape.dropped) {
      this.#recent.delete(shape)
      this.#recent.set(shape, true)
    }
    return shape
  }

  /**
   * The shape for `definition`, created (and its snapshot started) when there is none. `where`:
   * the tables its where's subqueries read (already checked as servable) and, if the caller has
   * it, the where already compiled for `table`.
   */
  async getOrCreate(definition: ShapeDefinition, table: TableInfo, where: RequestWhere = {}): Promise<ActiveShape> {
    const key = definitionKey(definition)
    const existing = this.#touch(this.#byKey.get(key))
    if (existing) return existing
    let creating = this.#creating.get(key)
    if (!creating) {
      const failure = this.#failures.get(key)
      if (failure) throw failure
      if (this.#snapshots.busy && this.#snapshots.waiting >= this.#options.snapshotQueueLength) {
        throw new OverloadedError(`Too many shapes are waiting for their snapshot (${this.#snapshots.waiting}); retry shortly.`)
      }
      // Columns and where are checked against the table first: a 400 leaves nothing behind. A where the
      // caller did not compile (a worker parsed it) shares its family's parse (`stored-wheres.ts`).
      const bound = bindShape(definition, table, where.tables, where.where ?? this.#wheres.compileOf(definition, table, where.tables))
      creating = this.#create(compactDefinition(definition, table, bound), key, bound, table).finally(() => this.#creating.delete(key))
      this.#creating.set(key, creating)
    }
    return creating
  }

  /**
   * Drops a shape: its clients get 409 and the next request for its definition a new handle; with
   * `failure`, they get that 400 instead (the definition can never be served).
   */
  async drop(shape: ActiveShape, reason: string, failure?: InvalidRequestError): Promise<void> {
    if (!shape.drop(failure)) return
    this.#queued.get(shape)?.abort()
    this.#options.log.info({ handle: shape.stored.handle, reason, shapes: this.size - 1 }, 'dropping shape')
    this.#router?.remove(shape)
    this.#recent.delete(shape)
    this.#byHandle.delete(shape.stored.handle)
    if (this.#byKey.get(shape.stored.definitionKey) === shape) this.#byKey.delete(shape.stored.definitionKey)
    this.#options.notifier.notify(shape.stored.id)
    await this.#options.store.deleteShape(shape.stored.id)
  }

  /**
   * Ends running snapshots before storage closes. Their shapes stay "snapshotting" in storage
   * and are dropped at the next start, so their clients refetch.
   */
  async stop(): Promise<void> {
    this.#stopping = true
    clearInterval(this.#confirmTimer)
    for (const leave of this.#queued.values()) leave.abort()
    await Promise.allSettled([...this.#running, this.#confirming])
  }

  /** Drops every shape (storage is about to start over): all their clients get 409. */
  async dropAll(reason: string): Promise<void> {
    await Promise.all([...this.#byHandle.values()].map((shape) => this.drop(shape, reason)))
  }

  /** Throws the 409 for a request whose handle is gone, naming the current handle. */
  async mustRefetch(definition: ShapeDefinition, table: TableInfo, why: string, where: RequestWhere = {}): Promise<never> {
    const current = await this.getOrCreate(definition, table, where)
    throw new MustRefetchError(current.stored.handle, why)
  }

  /** `fullTable`: the table with every column (a where may read columns the shape does not select). */
  async #create(definition: ShapeDefinition, key: string, bound: BoundShape, fullTable: TableInfo): Promise<ActiveShape> {
    const { store, log, pool } = this.#options
    const table = bound.table
    const router = this.#router
    if (!router) throw new UnavailableError('Sluice is starting')
    // The tables subqueries read are replicated too (docs/ARCHITECTURE.md I2, I25).
    const nodes = bound.where?.subqueries ?? []
    await Promise.all([table, ...nodes.map((node) => node.table)].map((each) => this.#replication.ensure(each)))
    const { shape: stored, flushed } = await store.registerShape(definition, key, table.primaryKey, bound.table)
    const subqueries = bound.where && nodes.length > 0 ? new ShapeSubqueries(bound.where, fullTable, stored.handle, pool) : undefined
    const shape = ActiveShape.waiting(stored, bound, subqueries)
    // The router holds the shape's changes before its snapshot starts (docs/ARCHITECTURE.md I2),
    // and the snapshot starts without waiting for the record's flush (a disk sync, 60 ms a shape
    // on a busy machine). The handle is given out only once the record is on disk (I8): requests
    // find the shape once it is registered, after the flush.
    router.add(shape)
    const running = this.#runSnapshot(shape, router)
    this.#running.add(running)
    void running.finally(() => this.#running.delete(running))
    try {
      await flushed
    } catch (error) {
      await this.drop(shape, 'its record could not be written')
      throw error
    }
    // A shape dropped meanwhile (its snapshot failed) is not registered; its request gets what its clients would.
    if (!shape.dropped) this.#register(shape)
    // At debug: a line per new shape, and storage's size (a read of four B-trees' statistics), would be much of its cost.
    if (log.isLevelEnabled('debug')) log.debug({ handle: stored.handle, table: table.table, shapes: this.size, storageBytes: store.sizeBytes() }, 'shape created')
    await this.#evictOverflow()
    return shape
  }

  /**
   * One Visibility for the shapes that share a snapshot: an idle shape keeps its snapshot's until a
   * transaction passes it, and a set of xids, a bigint and their object each were 250 bytes a shape.
   */
  #visibilityOf(info: SnapshotInfo): Visibility {
    let visibility = this.#visibilities.get(info)
    if (!visibility) this.#visibilities.set(info, (visibility = visibilityOf(info)))
    return visibility
  }

  #activate(shape: ActiveShape): void {
    this.#register(shape)
    this.#router?.add(shape)
  }

  /** Requests find the shape by its definition and handle (and it may be evicted). */
  #register(shape: ActiveShape): void {
    this.#byKey.set(shape.stored.definitionKey, shape)
    this.#byHandle.set(shape.stored.handle, shape)
    this.#recent.set(shape, true)
  }

  /**
   * Drops least recently used shapes while more than SLUICE_MAX_SHAPES are kept. Run once a new
   * shape is registered (it is the most recently used), not before: shapes created at once would
   * all see the same free room, and shapes still being created cannot be dropped.
   */
  async #evictOverflow(): Promise<void> {
    for (const shape of this.#recent.keys()) {
      if (this.#byHandle.size <= this.#options.maxShapes) return
      await this.drop(shape, `evicted: least recently used of ${this.#options.maxShapes} shapes (SLUICE_MAX_SHAPES)`)
    }
  }

  /** Lets the router forget the routed transactions a fresh snapshot shows. */
  async #confirmCommits(router: ShapeRouter): Promise<void> {
    try {
      const { rows } = await this.#options.pool.query<{ s: string }>('SELECT pg_current_snapshot()::text AS s')
      router.confirmCommits(visibilityOf(parseSnapshotText(rows[0]!.s)))
    } catch (error) {
      // PostgreSQL is unreachable, so nothing new is replicated meanwhile: the next tick retries.
      this.#options.log.debug({ err: (error as Error).message }, 'could not read a snapshot to confirm routed transactions')
    }
  }

  async #runSnapshot(shape: ActiveShape, router: ShapeRouter): Promise<void> {
    const { store, notifier, log } = this.#options
    const id = shape.stored.id
    // A shape dropped while it waits leaves the queue at once (its clients' refetch queues anew).
    const leave = new AbortController()
    this.#queued.set(shape, leave)
    let started = Date.now()
    const stillWanted = () => {
      if (shape.dropped) throw new Error('shape dropped during its snapshot')
      if (this.#stopping) throw new Error('server stopping')
    }
    const subqueries = shape.subqueries
    const equality = equalityRowsOf(shape.where, shape.table)
    try {
      if (shape.dropped || this.#stopping) return
      const outcome = await this.#snapshots
        .run(
          {
            table: shape.table,
            whereSql: shape.where?.sql,
            rows: shape.stored.definition.log === LOG_MODES.full,
            tableKey: `${shape.table.oid}:${qualifiedName(shape.table.table)}`,
            // A shape with subqueries reads their results in its transaction: it runs alone (I21, I25).
            batchable: shape.where?.equalityIndex !== undefined && !subqueries,
            ...(subqueries && {
              headersSql: { [SUBQUERY_HEADERS.tags]: subqueries.headersSql.tags, [SUBQUERY_HEADERS.activeConditions]: subqueries.headersSql.activeConditions },
            }),
            key: shape.stored.definitionKey,
            ...(equality && { equality }),
            sink: {
              missedCommits: (info) => {
                stillWanted()
                const visibility = visibilityOf(info)
                router.confirmCommits(visibility)
                return router.commitsMissedBy(shape, visibility)
              },
              onRetake: (missed) => {
                log.info({ handle: shape.stored.handle, transactions: missed.length }, 'snapshot taken again once transactions already replicated are visible in it (committed, not yet visible: a synchronous standby, or a busy server)')
                this.#options.onSnapshotRetaken?.()
              },
              ...(subqueries && { inSnapshot: (client: pg.PoolClient) => subqueries.load(client) }),
              onSnapshotInfo: (info) => {
                started = Date.now()
                router.snapshotStarted(shape, this.#visibilityOf(info))
              },
              onRows: async (batch) => {
                stillWanted()
                await store.appendSnapshotRows(id, batch)
                notifier.notify(id)
              },
              onComplete: async (rows, info) => {
                stillWanted()
                await store.finishSnapshot(id, snapshotEndMessage(info), info, rows)
              },
            },
          },
          leave.signal,
        )
        .finally(() => this.#queued.delete(shape))
      if (!outcome || shape.dropped || this.#stopping) return
      if ('left' in outcome) throw outcome.left
      const { rows } = outcome
      shape.completeSnapshot()
      notifier.notify(id)
      const ms = Date.now() - started
      // At info only a snapshot long enough to have logged progress: a line per new shape is much of a burst's cost.
      log[ms >= PROGRESS_EVERY_MS ? 'info' : 'debug']({ handle: shape.stored.handle, rows, ms }, 'snapshot complete')
      this.#options.onSnapshotTaken?.(ms / 1000)
    } catch (error) {
      if (this.#stopping) return
      const failure = snapshotFailure(error, shape.stored, log)
      if (failure.kind === 'table-changed') this.#options.onTableChanged?.(shape.stored.definition.table)
      if (failure.kind === 'permanent') this.#failures.set(shape.stored.definitionKey, failure.error)
      await this.drop(shape, 'snapshot failed', failure.kind === 'permanent' ? failure.error : undefined)
    }
  }
}
