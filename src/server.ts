/**
 * Assembles Sluice from its parts in the order the data flows (docs/ARCHITECTURE.md: Data flow,
 * Lifecycle): checks, storage, shapes, replication, then HTTP, each a service that stops in
 * reverse. `main.ts` and the tests both start it from here.
 */
import { spawn } from 'node:child_process'
import { statfsSync } from 'node:fs'
import { join } from 'node:path'
import type pg from 'pg'
import type { Config } from './config.js'
import { seedDemo } from './demo.js'
import { ADMISSION, Admission } from './http/admission.js'
import { HEALTH, type Health } from './http/app.js'
import { createHttpHandlers } from './http/http-service.js'
import { HttpListener } from './http-listener.js'
import { ServiceStack } from './lifecycle.js'
import { flushLogSync, type Logger } from './log.js'
import { Metrics } from './metrics.js'
import { createPool } from './pg/pool.js'
import { ensurePublication } from './pg/publication.js'
import { runStartupChecks } from './pg/startup-checks.js'
import { TableCatalog, type TableCatalogOptions } from './pg/table-catalog.js'
import { walBytesPast } from './pg/wal-lag.js'
import { Acknowledgements } from './replication/acknowledgements.js'
import { REPLICATION_STATUS, ReplicationStream, type ReplicationStatus } from './replication/replication-stream.js'
import { ShapeManager } from './shapes/shape-manager.js'
import { ShapeNotifier } from './shapes/shape-notifier.js'
import { ShapeRouter } from './shapes/shape-router.js'
import { ShapeLogStore } from './storage/shape-log-store.js'

/** How long an exit after a storage failure may take before the process is killed (see storageFailed). */
const EXIT_WATCHDOG_S = 2

export interface SluiceServer {
  /** Base URL of the HTTP API, e.g. `http://127.0.0.1:3000`. */
  readonly url: string
  readonly store: ShapeLogStore
  readonly manager: ShapeManager
  /** Wakes live requests; tests ask it whether a request is waiting yet. */
  readonly notifier: ShapeNotifier
  readonly replication: ReplicationStream
  stop(): Promise<void>
}

/** What tests and the owner of HTTP workers may pass in besides the configuration. */
export interface StartOptions {
  readonly catalog?: TableCatalogOptions
  /** Used instead of a new one (the owner's also tells its workers, `cluster/owner.ts`). */
  readonly notifier?: ShapeNotifier
}

/** Everything but what serves HTTP, as it runs. */
export interface SluiceCore {
  readonly store: ShapeLogStore
  readonly manager: ShapeManager
  readonly notifier: ShapeNotifier
  readonly replication: ReplicationStream
  readonly tables: TableCatalog
  readonly pool: pg.Pool
  readonly admission: Admission
  readonly metrics: Metrics
  health(): Health
}

export async function startSluice(config: Config & { databaseUrl: string }, log: Logger, options: StartOptions = {}): Promise<SluiceServer> {
  return startServing(config, log, options, async (services, core) => {
    const { admission } = core
    core.metrics.readRequestsFrom(() => ({ initial: admission.inFlight(ADMISSION.initial), existing: admission.inFlight(ADMISSION.existing) }))
    const handlers = await createHttpHandlers(config, { ...core, log: log.child({ component: 'http' }) })
    const http = new HttpListener({ ...handlers, config })
    await services.start(http)
    const { store, manager, notifier, replication } = core
    return { url: http.url, store, manager, notifier, replication }
  })
}

/**
 * Starts everything but what serves HTTP, then `serve` on the same stack, which it extends with
 * that last service: an `HttpListener` here, the HTTP worker processes in `cluster/owner.ts`.
 */
export async function startServing<T>(
  config: Config & { databaseUrl: string },
  log: Logger,
  options: StartOptions,
  serve: (services: ServiceStack, core: SluiceCore) => Promise<T>,
): Promise<T & { stop(): Promise<void> }> {
  const services = new ServiceStack(log)
  try {
    const served = await serve(services, await compose(services, config, log, options))
    return { ...served, stop: () => services.stop() }
  } catch (error) {
    // A stop that fails is logged by the stack; the start's failure is the one to report.
    await services.stop().catch(() => undefined)
    throw error
  }
}

/**
 * Builds each part once what it needs runs, and starts it on `services`, which stops them in
 * reverse: HTTP first (started by the caller, last), so no request reaches a stopped part; then
 * replication, so no commit arrives; then shapes, whose last commits land before storage
 * closes; the pool last.
 */
async function compose(services: ServiceStack, config: Config & { databaseUrl: string }, log: Logger, options: StartOptions): Promise<SluiceCore> {
  // Shape snapshots and subset queries each get `maxConcurrentSnapshots` connections, plus a few for the rest.
  const pool = createPool(config.databaseUrl, 2 * config.maxConcurrentSnapshots + 4, log)
  await services.start({
    name: 'database',
    start: async () => {
      const identity = await runStartupChecks(pool, { slotName: config.replicationSlot })
      log.info({ serverVersionNum: identity.serverVersionNum }, 'PostgreSQL checks passed')
      await ensurePublication(pool, config.publication)
    },
    stop: () => pool.end(),
  })

  const metrics = new Metrics()
  const storageFailed = (error: unknown) => {
    // Nothing past storage was acknowledged; a restart replays from there.
    log.fatal({ err: error, dataDir: config.dataDir, freeBytes: freeBytes(config.dataDir) }, 'writing shape logs failed (disk full or I/O error?): Sluice stops; free space or fix storage, then start it again — nothing acknowledged is lost, the slot replays the rest')
    // lmdb's exit hook closes the environment and can wait on a write that cannot finish on a
    // full disk: the soak saw the process stay up after this line. Storage needs no flushing, but
    // the log does: pino's exit hook, which writes out what its asynchronous stream still holds,
    // goes too.
    flushLogSync(log)
    process.removeAllListeners('exit')
    // process.exit joins libuv's threadpool, where lmdb's write thread may be waiting for this
    // thread to run a transaction's callback: each waits for the other for ever (CI: a hung
    // Sluice's main thread in uv_thread_join, lmdb's WriteWorker in WaitForCallbacks). A
    // detached watchdog kills the process if the exit has not happened within EXIT_WATCHDOG_S.
    spawn('sh', ['-c', `sleep ${EXIT_WATCHDOG_S}; kill -9 ${process.pid} 2>/dev/null`], { detached: true, stdio: 'ignore' }).unref()
    process.exit(1)
  }
  const store = ShapeLogStore.open(join(config.dataDir, 'shapes'), {
    chunkBytes: config.chunkBytes,
    onCommitted: (entries) => metrics.changesAppended.inc(entries),
    // Any write, a snapshot's or a shape's removal as well as a commit's (docs/ARCHITECTURE.md I5).
    onFailure: storageFailed,
  })
  await services.start({
    name: 'storage',
    start: () => {
      if (store.droppedOldFormatShapes > 0) {
        log.warn({ shapes: store.droppedOldFormatShapes }, 'shape storage was written in an older layout: its shapes were dropped and are rebuilt on request (clients refetch)')
      }
      return Promise.resolve()
    },
    stop: () => store.close(),
  })

  const notifier = options.notifier ?? new ShapeNotifier()
  const servable = { allowKeylessTables: config.allowKeylessTables }
  const tables = new TableCatalog(pool, servable, options.catalog)
  const manager = new ShapeManager({
    store,
    pool,
    notifier,
    publication: config.publication,
    log: log.child({ component: 'shapes' }),
    maxShapes: config.maxShapes,
    maxConcurrentSnapshots: config.maxConcurrentSnapshots,
    snapshotQueueLength: config.snapshotQueueLength,
    serve: servable,
    onSnapshotTaken: (seconds) => metrics.snapshotSeconds.observe(seconds),
    onSnapshotRetaken: () => metrics.snapshotsRetaken.inc(),
    onSnapshotQuery: () => metrics.snapshotQueries.inc(),
    onTableChanged: (table) => tables.forget(table),
  })
  const acknowledgements = new Acknowledgements()
  const router = new ShapeRouter({
    store,
    notifier,
    acknowledge: (durable) => acknowledgements.report(durable),
    onStorageFailure: storageFailed,
    invalidate: (shape, reason) => {
      tables.forget(shape.stored.definition.table)
      void manager.drop(shape, reason)
    },
    maxHeldChanges: config.maxHeldChanges,
    log: log.child({ component: 'router' }),
  })
  await services.start({
    name: 'shapes',
    start: () => manager.start(router),
    // Replication has stopped: the last commits land, then running snapshots end.
    stop: async () => {
      await router.stop()
      await manager.stop()
    },
  })
  const admission = new Admission({ initial: config.maxInitialRequests, existing: config.maxExistingRequests })
  metrics.readStateFrom({
    shapes: () => manager.size,
    snapshotsWaiting: () => manager.snapshotsWaiting,
    storageBytes: () => store.sizeBytes(),
    durableLsn: () => store.durableLsn,
    replicationLagBytes: () => walBytesPast(pool, store.durableLsn),
  })

  const replication = new ReplicationStream({
    connectionString: config.databaseUrl,
    slot: config.replicationSlot,
    publication: config.publication,
    resumeFrom: () => store.committedLsn,
    history: {
      systemIdentifier: () => store.systemIdentifier,
      adopt: (systemIdentifier) => store.adoptSystemIdentifier(systemIdentifier),
      reset: async (systemIdentifier, startLsn, problem) => {
        // Let commits of the old history land first, so none of them lands after the reset.
        await router.stop()
        await manager.dropAll(`replication history lost (${problem.kind})`)
        await store.reset(systemIdentifier, startLsn)
        router.reset(startLsn)
        tables.clear()
        await ensurePublication(pool, config.publication)
        log.warn({ startLsn: String(startLsn) }, 'shape storage reset; new shapes are built from the current database')
      },
    },
    sink: {
      onBegin: (begin) => router.onBegin(begin),
      onChanges: (changes) => router.onChanges(changes),
      onCommit: (commit) => {
        metrics.transactions.inc()
        return router.onCommit(commit)
      },
      onIdle: (walEnd) => router.onIdle(walEnd),
      onRelation: (relation) => router.onRelation(relation),
    },
    acknowledgements,
    log: log.child({ component: 'replication' }),
  })
  await services.start(replication)

  if (config.demo) await seedDemo(config.databaseUrl)
  return { store, manager, notifier, replication, tables, pool, admission, metrics, health: () => healthOf(replication.status) }
}

/** Free bytes on the data directory's filesystem, for the storage failure's log line. */
function freeBytes(dir: string): number | undefined {
  try {
    const { bavail, bsize } = statfsSync(dir)
    return bavail * bsize
  } catch {
    return undefined
  }
}

function healthOf(status: ReplicationStatus): Health {
  if (status === REPLICATION_STATUS.streaming) return HEALTH.active
  return status === REPLICATION_STATUS.waiting ? HEALTH.waiting : HEALTH.starting
}
