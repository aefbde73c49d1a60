/**
 * One HTTP worker process (`SLUICE_WORKERS` above 1; docs/ARCHITECTURE.md: Worker processes,
 * I27). It serves the whole HTTP API from the owner's LMDB environment opened read-only, learns
 * of commits from the owner's feed, and asks the owner to create and drop shapes. Its parts are
 * services on one stack, as the owner's are: the pool, storage, the owner's feed (it listens only
 * once the first feed has told it every shape), then HTTP. The owner stops it with a message;
 * signals are the owner's to handle. When the owner is gone it exits at once.
 *
 * Budgets (docs/ARCHITECTURE.md I22): each worker keeps its own live connections
 * (SLUICE_MAX_LIVE_CONNECTIONS) and requests for existing shapes (…_EXISTING), which cost its own
 * memory and CPU. What ends in work shared by the machine is divided among the workers: requests
 * for new shapes (…_INITIAL; their snapshots are the owner's) and subset queries
 * (SLUICE_MAX_CONCURRENT_SNAPSHOTS, each a PostgreSQL connection), so the machine as a whole
 * stays within the configured figures.
 */
import { join } from 'node:path'
import type { Config } from '../config.js'
import { MustRefetchError } from '../errors.js'
import { Admission, ADMISSION } from '../http/admission.js'
import { HEALTH, type Health } from '../http/app.js'
import { createHttpHandlers } from '../http/http-service.js'
import { HttpListener } from '../http-listener.js'
import { ServiceStack } from '../lifecycle.js'
import type { Logger } from '../log.js'
import { Metrics } from '../metrics.js'
import { createPool } from '../pg/pool.js'
import { TableCatalog } from '../pg/table-catalog.js'
import { HEADERS } from '../protocol/constants.js'
import { ShapeNotifier } from '../shapes/shape-notifier.js'
import { ReadOnlyShapeLog } from '../storage/read-only-shape-log.js'
import { isOwnerMessage, type FeedMessage, type ScrapeMessage, type WorkerMessage } from './messages.js'
import { OwnerLink } from './owner-link.js'
import { RegistryWithOwner } from './owner-metrics.js'
import { WorkerShapes } from './worker-shapes.js'

export async function runWorker(config: Config & { databaseUrl: string; workers: number }, log: Logger): Promise<void> {
  // After the owner is killed the channel still looks connected until its end is noticed, and a
  // send then fails (EPIPE): without a callback that is an 'error' event that ends this worker
  // with a stack trace before 'disconnect' says why (the soak's owner kills showed it).
  const send = (message: WorkerMessage) => {
    if (process.connected) process.send?.(message, undefined, undefined, () => undefined)
  }
  const share = (total: number) => Math.max(1, Math.ceil(total / config.workers))
  const services = new ServiceStack(log)
  let stopping: Promise<void> | undefined
  const stop = (code: number) => {
    stopping ??= services.stop().finally(() => process.exit(code))
  }

  const reader = new ReadOnlyShapeLog(join(config.dataDir, 'shapes'), () => new MustRefetchError(undefined, 'shape was dropped'))
  const notifier = new ShapeNotifier()
  // Catalog look-ups, subset queries and the demo's writes; shape snapshots are the owner's.
  const subsetSlots = share(config.maxConcurrentSnapshots)
  const pool = createPool(config.databaseUrl, subsetSlots + 2, log)
  const tables = new TableCatalog(pool, { allowKeylessTables: config.allowKeylessTables })
  const owner = new OwnerLink(send)
  const shapes = new WorkerShapes({ reader, notifier, owner, tables, log })
  // This worker counts what it serves; a scrape it answers is the owner's sum of the machine's.
  const metrics = new Metrics(new RegistryWithOwner(async (own) => (await owner.request({ op: 'metrics', own })).metrics ?? []))
  const scraped = async ({ scrapeId }: ScrapeMessage) => {
    try {
      send({ kind: 'scraped', scrapeId, metrics: await metrics.registry.getMetricsAsJSON() })
    } catch (error) {
      // The owner's scrape goes on without this worker's gauges once it stops waiting.
      log.error({ err: error }, 'could not read the metrics of this worker for a scrape')
    }
  }
  let health: Health = HEALTH.starting
  let firstFeed: () => void = () => {}
  const onFeed = (feed: FeedMessage) => {
    shapes.apply(feed)
    health = feed.health
    firstFeed()
  }
  process.on('message', (message) => {
    if (!isOwnerMessage(message)) return
    if (message.kind === 'feed') onFeed(message)
    else if (message.kind === 'reply') owner.onReply(message)
    else if (message.kind === 'scrape') void scraped(message)
    else stop(0)
  })
  // The owner's listening socket and commits are gone with it: a supervisor restarts the whole.
  process.on('disconnect', () => {
    log.error('the owner process is gone; this worker exits')
    process.exit(1)
  })
  process.on('SIGINT', () => {})
  process.on('SIGTERM', () => {})

  try {
    await services.start({ name: 'database', start: () => Promise.resolve(), stop: () => pool.end() })
    await services.start({ name: 'storage', start: () => Promise.resolve(), stop: () => reader.close() })
    await services.start({
      name: 'owner feed',
      start: () => {
        const first = new Promise<void>((resolve) => (firstFeed = resolve))
        send({ kind: 'ready' })
        return first
      },
      stop: () => Promise.resolve(owner.close()),
    })
    const admission = new Admission({ initial: share(config.maxInitialRequests), existing: config.maxExistingRequests })
    metrics.readRequestsFrom(() => ({ initial: admission.inFlight(ADMISSION.initial), existing: admission.inFlight(ADMISSION.existing) }))
    const handlers = await createHttpHandlers({ ...config, maxConcurrentSnapshots: subsetSlots }, {
      store: reader,
      notifier,
      manager: shapes,
      tables,
      pool,
      admission,
      metrics,
      health: () => health,
      log: log.child({ component: 'http' }),
      extraHeaders: { [HEADERS.worker]: String(process.pid) },
    })
    const http = new HttpListener({ ...handlers, config })
    await services.start(http)
    send({ kind: 'listening', url: http.url })
  } catch (error) {
    log.fatal({ err: error }, 'an HTTP worker could not start')
    stop(1)
  }
}
