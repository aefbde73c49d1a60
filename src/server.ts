/**
 * Assembles Sluice from its parts in the order the data flows (DESIGN: Data flow): checks,
 * storage, shapes, replication, then HTTP. `main.ts` and the tests both start it from here.
 */
import { serve, type ServerType } from '@hono/node-server'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import pg from 'pg'
import type { Config } from './config.js'
import { createApp, HEALTH } from './http/app.js'
import { TableCatalog } from './http/table-catalog.js'
import type { Logger } from './log.js'
import { ensurePublication } from './pg/publication.js'
import { runStartupChecks } from './pg/startup-checks.js'
import { REPLICATION_STATUS, ReplicationStream } from './replication/replication-stream.js'
import { ShapeManager } from './shapes/shape-manager.js'
import { ShapeNotifier } from './shapes/shape-notifier.js'
import { ShapeRouter } from './shapes/shape-router.js'
import { ShapeLogStore } from './storage/shape-log-store.js'

export interface SluiceServer {
  /** Base URL of the HTTP API, e.g. `http://127.0.0.1:3000`. */
  readonly url: string
  readonly store: ShapeLogStore
  readonly manager: ShapeManager
  readonly replication: ReplicationStream
  stop(): Promise<void>
}

export async function startSluice(config: Config & { databaseUrl: string }, log: Logger): Promise<SluiceServer> {
  const pool = new pg.Pool({ connectionString: config.databaseUrl, max: 10 })
  pool.on('error', (error) => log.warn({ err: error.message }, 'idle PostgreSQL connection failed'))
  try {
    const identity = await runStartupChecks(pool, { slotName: config.replicationSlot })
    log.info({ serverVersionNum: identity.serverVersionNum }, 'PostgreSQL checks passed')
    await ensurePublication(pool, config.publication)
  } catch (error) {
    await pool.end()
    throw error
  }

  const store = ShapeLogStore.open(join(config.dataDir, 'shapes'), { chunkBytes: config.chunkBytes })
  const notifier = new ShapeNotifier()
  const manager = new ShapeManager({ store, pool, notifier, publication: config.publication, log: log.child({ component: 'shapes' }) })
  let replication: ReplicationStream | undefined
  const router = new ShapeRouter({
    store,
    notifier,
    acknowledge: (durable) => replication?.acknowledge(durable),
    invalidate: (shape, reason) => void manager.drop(shape, reason),
    log: log.child({ component: 'router' }),
  })
  await manager.start(router)
  replication = new ReplicationStream({
    connectionString: config.databaseUrl,
    slot: config.replicationSlot,
    publication: config.publication,
    resumeFrom: () => store.durableLsn,
    sink: router,
    log: log.child({ component: 'replication' }),
  })
  const stream = replication
  await stream.start()

  const app = createApp({
    store,
    notifier,
    manager,
    tables: new TableCatalog(pool),
    longPollMs: config.longPollMs,
    cache: { maxAgeSeconds: config.cacheMaxAgeSeconds, staleAgeSeconds: config.cacheStaleAgeSeconds },
    canCreateShapes: () => stream.status === REPLICATION_STATUS.streaming,
    secret: config.secret,
    allowShapeDeletion: config.allowShapeDeletion,
    health: () => (stream.status === REPLICATION_STATUS.streaming ? HEALTH.active : HEALTH.starting),
    log: log.child({ component: 'http' }),
  })
  const server = await listen(app.fetch, config.port, config.host)
  const address = server.address() as AddressInfo
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address
  const url = `http://${host === '0.0.0.0' ? '127.0.0.1' : host === '[::]' ? '[::1]' : host}:${address.port}`

  return {
    url,
    store,
    manager,
    replication: stream,
    async stop() {
      await new Promise<void>((resolve) => {
        server.close(() => resolve())
        // Long-polls would hold the close for their whole timeout.
        if ('closeAllConnections' in server) server.closeAllConnections()
      })
      await stream.stop()
      await router.flushed()
      await store.close()
      await pool.end()
    },
  }
}

function listen(fetch: Parameters<typeof serve>[0]['fetch'], port: number, hostname: string): Promise<ServerType> {
  return new Promise((resolve, reject) => {
    const server = serve({ fetch, port, hostname }, () => resolve(server))
    server.once('error', reject)
  })
}
