/**
 * What serves HTTP, built one way for the single process (`server.ts`, over the writer's store
 * and `ShapeManager`) and for an HTTP worker (`cluster/worker.ts`, over a read-only reader and
 * the registry it mirrors from the owner): the Hono app, the complete-chunk fast path ahead of
 * it, and the signal that ends waiting requests. The caller puts them on its `HttpListener`.
 */
import { setMaxListeners } from 'node:events'
import { readFile } from 'node:fs/promises'
import type { IncomingMessage, ServerResponse } from 'node:http'
import type pg from 'pg'
import type { Logger } from '../log.js'
import type { Metrics } from '../metrics.js'
import type { TableName } from '../pg/table-name.js'
import { Semaphore } from '../shapes/semaphore.js'
import type { Admission } from './admission.js'
import { createApp, HEALTH, type Health } from './app.js'
import { ChunkResponses } from './chunk-responses.js'
import { LiveSlots } from './live-slots.js'
import type { ShapeLogReader, ShapeLogWaiter } from './shape-log.js'
import type { ShapeRegistry, TableLookup } from './shape-route.js'

/** The options of `config.ts` HTTP reads (http/ does not import the configuration). */
export interface HttpConfig {
  /** Subset queries at once, each on a connection of `pool`. */
  readonly maxConcurrentSnapshots: number
  readonly snapshotQueueLength: number
  readonly longPollMs: number
  readonly cacheMaxAgeSeconds: number
  readonly cacheStaleAgeSeconds: number
  readonly secret: string | undefined
  readonly allowShapeDeletion: boolean
  readonly tables: readonly TableName[] | undefined
  readonly maxLiveConnections: number
  readonly sseTimeoutMs: number
  readonly sseKeepAliveMs: number
  readonly sseRetryMs: number
  readonly demo: boolean
}

export interface HttpServiceDeps {
  readonly store: ShapeLogReader
  readonly notifier: ShapeLogWaiter
  readonly manager: ShapeRegistry
  readonly tables: TableLookup
  readonly pool: pg.Pool
  readonly admission: Admission
  readonly metrics: Metrics
  readonly health: () => Health
  readonly log: Logger
  /** Headers added to every response (a worker names itself). */
  readonly extraHeaders?: Readonly<Record<string, string>>
}

/** What `HttpListener` serves. */
export interface HttpHandlers {
  readonly fetch: ReturnType<typeof createApp>['fetch']
  /** Answers a complete chunk it holds (returning true) before Hono sees the request. */
  readonly answerFirst: (req: IncomingMessage, res: ServerResponse) => boolean
  /** Aborted when stopping begins: waiting requests answer at once. */
  readonly shutdown: AbortController
}

export async function createHttpHandlers(config: HttpConfig, deps: HttpServiceDeps): Promise<HttpHandlers> {
  const shutdown = new AbortController()
  // Every waiting request listens to it (and stops listening when it is answered): thousands at
  // once are normal here, not a leak worth a warning.
  setMaxListeners(0, shutdown.signal)
  const chunkResponses = new ChunkResponses()
  const { log } = deps
  const app = createApp({
    store: deps.store,
    notifier: deps.notifier,
    manager: deps.manager,
    tables: deps.tables,
    pool: deps.pool,
    subsetSlots: new Semaphore(config.maxConcurrentSnapshots),
    subsetQueueLength: config.snapshotQueueLength,
    chunkResponses,
    longPollMs: config.longPollMs,
    cache: { maxAgeSeconds: config.cacheMaxAgeSeconds, staleAgeSeconds: config.cacheStaleAgeSeconds },
    canCreateShapes: () => deps.health() === HEALTH.active,
    secret: config.secret,
    allowShapeDeletion: config.allowShapeDeletion,
    allowedTables: config.tables,
    liveSlots: new LiveSlots(config.maxLiveConnections, deps.metrics),
    admission: deps.admission,
    metrics: deps.metrics,
    openapi: await readFile(new URL('../../openapi.yaml', import.meta.url), 'utf8'),
    shutdown: shutdown.signal,
    sse: { timeoutMs: config.sseTimeoutMs, keepAliveMs: config.sseKeepAliveMs, retryMs: config.sseRetryMs },
    demo: config.demo ? deps.pool : undefined,
    health: deps.health,
    log,
  })
  const answerCached = chunkResponses.answerer({ manager: deps.manager, secret: config.secret, metrics: deps.metrics, log })
  const extra = Object.entries(deps.extraHeaders ?? {})
  const answerFirst = extra.length === 0 ? answerCached : (req: IncomingMessage, res: ServerResponse) => {
    for (const [name, value] of extra) res.setHeader(name, value)
    return answerCached(req, res)
  }
  return { fetch: app.fetch, answerFirst, shutdown }
}
