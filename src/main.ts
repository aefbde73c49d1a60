/**
 * `npm start`: reads the configuration, starts an embedded PostgreSQL when DATABASE_URL is
 * unset, serves the API, and shuts down cleanly on SIGINT/SIGTERM. With `SLUICE_WORKERS` above
 * 1 this process is the owner and forks the HTTP workers, which run this file too
 * (docs/ARCHITECTURE.md: Worker processes).
 */
import cluster from 'node:cluster'
import { join } from 'node:path'
import { startOwner } from './cluster/owner.js'
import { runWorker } from './cluster/worker.js'
import { loadConfig, type Config } from './config.js'
import { SluiceError } from './errors.js'
import { seedDemo } from './demo.js'
import { createLogger } from './log.js'
import type { EmbeddedCluster } from './pg/embedded.js'
import { startSluice } from './server.js'
import { freePort } from './pg/free-port.js'

async function main(): Promise<void> {
  let config: Config
  try {
    config = loadConfig()
  } catch (error) {
    process.stderr.write(`sluice: invalid configuration: ${(error as Error).message}\n`)
    process.exit(2)
  }
  const log = createLogger(config.logLevel)
  if (cluster.isWorker) {
    // The owner passes its database URL, the embedded one included.
    await runWorker({ ...config, databaseUrl: config.databaseUrl! }, log.child({ worker: process.pid }))
    return
  }

  let embedded: EmbeddedCluster | undefined
  let databaseUrl = config.databaseUrl
  if (databaseUrl === undefined) {
    const dir = join(config.dataDir, 'postgres')
    log.info({ dir }, 'DATABASE_URL is unset: starting an embedded PostgreSQL 17')
    const pgLog = log.child({ component: 'embedded-postgres' })
    const { startEmbeddedPostgres } = await import('./pg/embedded.js')
    embedded = await startEmbeddedPostgres({ dir, port: await freePort(), onLog: (line) => pgLog.debug(line), onNotice: (line) => pgLog.warn(line) })
    databaseUrl = embedded.url
    await seedDemo(databaseUrl)
  }

  let server: { readonly url: string; stop(): Promise<void> }
  try {
    const options = { ...config, databaseUrl, demo: config.demo || embedded !== undefined }
    server = config.workers > 1 ? await startOwner(options, log) : await startSluice(options, log)
  } catch (error) {
    if (error instanceof SluiceError) log.fatal(error.message)
    else log.fatal({ err: error }, 'Sluice could not start')
    await embedded?.stop()
    process.exit(1)
  }

  log.info({ url: server.url, workers: config.workers }, 'Sluice is serving')
  if (embedded) {
    process.stdout.write(
      `\nSluice is serving ${server.url} (embedded PostgreSQL, demo table "items").\nTry:\n  curl '${server.url}/v1/shape?table=items&offset=-1'\n  open ${server.url}/ (the live demo page)\n\n`,
    )
  }

  let stopping = false
  const shutdown = async (signal: string) => {
    if (stopping) return
    stopping = true
    log.info({ signal }, 'shutting down')
    await server.stop()
    await embedded?.stop()
    process.exit(0)
  }
  process.on('SIGINT', () => void shutdown('SIGINT'))
  process.on('SIGTERM', () => void shutdown('SIGTERM'))
}

void main()
