/**
 * Starts Sluice in this process against a bench database, with its own slot, publication and
 * data directory (the pattern of test/support/sluice.ts, without vitest).
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { loadConfig, type Config } from '../../src/config.js'
import { createLogger } from '../../src/log.js'
import { startSluice, type SluiceServer } from '../../src/server.js'
import type { BenchDatabase } from './cluster.js'

export interface BenchSluice {
  readonly config: Config & { databaseUrl: string }
  readonly server: SluiceServer
  /** `<url>/v1/shape` of the running server. */
  shapeUrl(): string
  /** Stops the server; `start()` runs it again on the same data. */
  stop(): Promise<void>
  start(): Promise<void>
  close(): Promise<void>
}

export async function startBenchSluice(db: BenchDatabase, overrides: Partial<Config> = {}): Promise<BenchSluice> {
  const dataDir = await mkdtemp(join(tmpdir(), 'sluice-bench-data-'))
  const suffix = randomBytes(4).toString('hex')
  const config = {
    ...loadConfig({}),
    port: 0,
    host: '127.0.0.1',
    dataDir,
    replicationSlot: `sluice_bench_${suffix}`,
    publication: `sluice_bench_${suffix}`,
    logLevel: (process.env['BENCH_LOG'] ?? 'silent') as Config['logLevel'],
    ...overrides,
    databaseUrl: db.url,
  }
  const log = createLogger(config.logLevel)
  let server: SluiceServer | undefined = await startSluice(config, log)
  const running = (): SluiceServer => {
    if (!server) throw new Error('Sluice is stopped')
    return server
  }
  return {
    config,
    get server() {
      return running()
    },
    shapeUrl: () => `${running().url}/v1/shape`,
    async stop() {
      await running().stop()
      server = undefined
    },
    async start() {
      server = await startSluice(config, log)
    },
    async close() {
      await server?.stop()
      server = undefined
      await rm(dataDir, { recursive: true, force: true })
    },
  }
}
