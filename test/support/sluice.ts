/**
 * Starts a real Sluice (in this process) against a fresh test database, with its own slot,
 * publication and data directory.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { loadConfig, type Config } from '../../src/config.js'
import { createLogger } from '../../src/log.js'
import { startSluice, type SluiceServer, type StartOptions } from '../../src/server.js'
import { createTestDatabase, type TestDatabase } from './database.js'

export interface TestSluice {
  readonly db: TestDatabase
  readonly config: Config & { databaseUrl: string }
  server: SluiceServer
  /** `<url>/v1/shape` of the running server. */
  shapeUrl(): string
  /** Stops the server (gracefully) and starts it again on the same data (on a new port unless `overrides.port`). */
  restart(options?: { overrides?: Partial<Config>; whileDown?: () => Promise<void> }): Promise<void>
  close(): Promise<void>
}

/** `options` (a clock, say) also apply after `restart`. */
export async function startTestSluice(overrides: Partial<Config> = {}, db?: TestDatabase, options: StartOptions = {}): Promise<TestSluice> {
  const database = db ?? (await createTestDatabase())
  const dataDir = await mkdtemp(join(tmpdir(), 'sluice-test-data-'))
  const suffix = randomBytes(4).toString('hex')
  const config = {
    ...loadConfig({}),
    port: 0,
    host: '127.0.0.1',
    dataDir,
    replicationSlot: `sluice_test_${suffix}`,
    publication: `sluice_test_${suffix}`,
    logLevel: (process.env['SLUICE_TEST_LOG'] ?? 'silent') as Config['logLevel'],
    ...overrides,
    databaseUrl: database.url,
  }
  const log = createLogger(config.logLevel)
  let server = await startSluice(config, log, options)
  const sluice: TestSluice = {
    db: database,
    config,
    get server() {
      return server
    },
    set server(s) {
      server = s
    },
    shapeUrl: () => `${server.url}/v1/shape`,
    async restart({ overrides: more = {}, whileDown } = {}) {
      await server.stop()
      await whileDown?.()
      server = await startSluice({ ...config, ...more, port: more.port ?? 0, databaseUrl: database.url }, log, options)
    },
    async close() {
      await server.stop()
      await database.drop()
      await rm(dataDir, { recursive: true, force: true })
    },
  }
  return sluice
}

/** Waits until Sluice has made durable everything PostgreSQL had written when this was called. */
export async function waitForReplication(sluice: TestSluice, timeoutMs = 20_000): Promise<void> {
  const { rows } = await sluice.db.pool.query<{ lsn: string }>(`SELECT (pg_current_wal_lsn() - '0/0')::text AS lsn`)
  const target = BigInt(rows[0]!.lsn)
  const deadline = Date.now() + timeoutMs
  while (sluice.server.store.durableLsn < target) {
    if (Date.now() > deadline) throw new Error(`Sluice did not reach LSN ${target} (at ${sluice.server.store.durableLsn})`)
    await new Promise((resolve) => setTimeout(resolve, 25))
  }
}
