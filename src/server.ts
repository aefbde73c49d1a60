/**
 * Assembles Sluice from its parts in the order the data flows (docs/ARCHITECTURE.md: Data flow): checks,
 * storage, shapes, replication, then HTTP. `main.ts` and the tests both start it from here.
 */
import { serve } from '@hono/node-server'
import { setMaxListeners } from 'node:events'
import { statfsSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { createServer, type IncomingMessage, type Server, type ServerOptions, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import type { Config } from './config.js'
import { seedDemo } from './demo.js'
import { createApp, HEALTH, type Health } from './http/app.js'
import { ChunkResponses } from './http/chunk-responses.js'
import { LiveSlots } from './http/live-slots.js'
import { TableCatalog, type TableCatalogOptions } from './pg/table-catalog.js'
import { Metrics } from './metrics.js'
import type { Logger } from './log.js'
import { createPool } from './pg/pool.js'
import { ADMISSION, Admission } from './http/admission.js'
import { ensurePublication } from './pg/publication.js'
import { runStartupChecks } from './pg/startup-checks.js'
import { REPLICATION_STATUS, ReplicationStream, type ReplicationStatus } from './replication/replication-stream.js'
import { Semaphore } from './shapes/semaphore.js'
import { ShapeManager } from './shapes/shape-manager.js'
import { ShapeNotifier } from './shapes/shape-notifier.js'
import { ShapeRouter } from './shapes/shape-router.js'
import { ShapeLogStore } from './storage/shape-log-store.js'

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

/** What tests may pass in besides the configuration. */
export interface StartOptions {
  readonly catalog?: TableCatalogOptions
}

export async function startSluice(config: Config & { databaseUrl: string }, log: Logger, options: StartOptions = {}): Promise<SluiceServer> {
  // Snapshots each hold a connection; the rest serve catalog queries and shape creation.
  // Shape snapshots and subset queries each get `maxConcurrentSnapshots` connections, plus a few for the rest.
  const pool = createPool(config.databaseUrl, 2 * config.maxConcurrentSnapshots + 4, log)
  try {
    const identity = await runStartupChecks(pool, { slotName: config.replicationSlot })
    log.info({ serverVersionNum: identity.serverVersionNum }, 'PostgreSQL checks passed')
    await ensurePublication(pool, config.publication)
  } catch (error) {
    await pool.end()
    throw error
  }

  let metrics: Metrics | undefined
  const store = ShapeLogStore.open(join(config.dataDir, 'shapes'), {
    chunkBytes: config.chunkBytes,
    onCommitted: (entries) => metrics?.changesAppended.inc(entries),
  })
  if (store.droppedOldFormatShapes > 0) {
    log.warn({ shapes: store.droppedOldFormatShapes }, 'shape storage was written in an older layout: its shapes were dropped and are rebuilt on request (clients refetch)')
  }
  const notifier = new ShapeNotifier()
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
    onSnapshotTaken: (seconds) => metrics?.snapshotSeconds.observe(seconds),
    onSnapshotRetaken: () => metrics?.snapshotsRetaken.inc(),
    onSnapshotQuery: () => metrics?.snapshotQueries.inc(),
    onTableChanged: (table) => tables.forget(table),
  })
  let replication: ReplicationStream | undefined
  const router = new ShapeRouter({
    store,
    notifier,
    acknowledge: (durable) => replication?.acknowledge(durable),
    onStorageFailure: (error) => {
      // Nothing past storage was acknowledged; a restart replays from there.
      log.fatal({ err: error, dataDir: config.dataDir, freeBytes: freeBytes(config.dataDir) }, 'writing shape logs failed (disk full or I/O error?): Sluice stops; free space or fix storage, then start it again — nothing acknowledged is lost, the slot replays the rest')
      // lmdb's exit hook closes the environment and can wait on a write that cannot finish on a
      // full disk: the soak saw the process stay up after this line. Nothing needs flushing here.
      process.removeAllListeners('exit')
      process.exit(1)
    },
    invalidate: (shape, reason) => {
      tables.forget(shape.stored.definition.table)
      void manager.drop(shape, reason)
    },
    maxHeldChanges: config.maxHeldChanges,
    log: log.child({ component: 'router' }),
  })
  await manager.start(router)
  const admission = new Admission({ initial: config.maxInitialRequests, existing: config.maxExistingRequests })
  metrics = new Metrics({
    shapes: () => manager.size,
    snapshotsWaiting: () => manager.snapshotsWaiting,
    requestsInFlight: () => ({ initial: admission.inFlight(ADMISSION.initial), existing: admission.inFlight(ADMISSION.existing) }),
    storageBytes: () => store.sizeBytes(),
    durableLsn: () => store.durableLsn,
    replicationLagBytes: async () => {
      const { rows } = await pool.query<{ lsn: string }>(`SELECT (pg_current_wal_lsn() - '0/0')::text AS lsn`).catch(() => ({ rows: [] }))
      const current = rows[0] ? BigInt(rows[0].lsn) : undefined
      return current === undefined ? undefined : Number(current > store.durableLsn ? current - store.durableLsn : 0n)
    },
  })
  const counted = metrics
  replication = new ReplicationStream({
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
        counted.transactions.inc()
        return router.onCommit(commit)
      },
      onIdle: (walEnd) => router.onIdle(walEnd),
      onRelation: (relation) => router.onRelation(relation),
    },
    log: log.child({ component: 'replication' }),
  })
  const stream = replication
  await stream.start()

  const shutdown = new AbortController()
  // Every waiting request listens to it (and stops listening when it is answered): thousands at
  // once are normal here, not a leak worth a warning.
  setMaxListeners(0, shutdown.signal)
  if (config.demo) await seedDemo(config.databaseUrl)
  const chunkResponses = new ChunkResponses()
  const httpLog = log.child({ component: 'http' })
  const app = createApp({
    store,
    notifier,
    manager,
    tables,
    pool,
    subsetSlots: new Semaphore(config.maxConcurrentSnapshots),
    subsetQueueLength: config.snapshotQueueLength,
    chunkResponses,
    longPollMs: config.longPollMs,
    cache: { maxAgeSeconds: config.cacheMaxAgeSeconds, staleAgeSeconds: config.cacheStaleAgeSeconds },
    canCreateShapes: () => stream.status === REPLICATION_STATUS.streaming,
    secret: config.secret,
    allowShapeDeletion: config.allowShapeDeletion,
    allowedTables: config.tables,
    liveSlots: new LiveSlots(config.maxLiveConnections, counted),
    admission,
    metrics: counted,
    openapi: await readFile(new URL('../openapi.yaml', import.meta.url), 'utf8'),
    shutdown: shutdown.signal,
    sse: { timeoutMs: config.sseTimeoutMs, keepAliveMs: config.sseKeepAliveMs, retryMs: config.sseRetryMs },
    demo: config.demo ? pool : undefined,
    health: () => healthOf(stream.status),
    log: httpLog,
  })
  const answerCached = chunkResponses.answerer({ manager, secret: config.secret, metrics: counted, log: httpLog })
  const server = await listen(app.fetch, answerCached, config)
  const address = server.address() as AddressInfo
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address
  const url = `http://${host === '0.0.0.0' ? '127.0.0.1' : host === '[::]' ? '[::1]' : host}:${address.port}`

  return {
    url,
    store,
    manager,
    notifier,
    replication: stream,
    async stop() {
      // Stop accepting, let waiting long-polls answer up-to-date at once, and give in-flight
      // requests a bounded time before cutting connections.
      shutdown.abort()
      const closed = new Promise<void>((resolve) => server.close(() => resolve()))
      // Keep-alive sockets go idle as their last response ends; close each as soon as it does.
      server.closeIdleConnections()
      const sweeper = setInterval(() => server.closeIdleConnections(), 50)
      const timer = setTimeout(() => server.closeAllConnections(), config.shutdownTimeoutMs)
      await closed
      clearInterval(sweeper)
      clearTimeout(timer)
      await stream.stop()
      await router.stop()
      await manager.stop()
      await store.close()
      await pool.end()
    },
  }
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

type Listener = (req: IncomingMessage, res: ServerResponse) => void

/** `answerFirst` may answer a request itself (returning true) before Hono sees it. */
function listen(
  fetch: Parameters<typeof serve>[0]['fetch'],
  answerFirst: (req: IncomingMessage, res: ServerResponse) => boolean,
  config: Pick<Config, 'port' | 'host' | 'maxHeaderBytes'>,
): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = serve(
      {
        fetch,
        port: config.port,
        hostname: config.host,
        serverOptions: { maxHeaderSize: config.maxHeaderBytes, connectionsCheckingInterval: 1_000 },
        createServer: ((options: ServerOptions, hono: Listener) =>
          createServer(options, (req, res) => {
            if (!answerFirst(req, res)) hono(req, res)
          })) as typeof createServer,
      },
      () => resolve(server as Server),
    ) as Server
    // Slow or idle clients must not pin sockets: headers within 10 s, a whole request within 30 s.
    server.headersTimeout = 10_000
    server.requestTimeout = 30_000
    server.keepAliveTimeout = 5_000
    server.once('error', reject)
  })
}
