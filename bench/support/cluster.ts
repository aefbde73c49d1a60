/**
 * One embedded PostgreSQL 17 for a whole bench run, and a fresh database per scenario so that
 * scenarios never see each other's tables, slots or publications.
 */
import { chmod, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import pg from 'pg'
import { startEmbeddedPostgres } from '../../src/pg/embedded.js'
import { freePort } from '../../src/pg/free-port.js'

export interface BenchDatabase {
  readonly url: string
  readonly name: string
  /** A pooled client for the scenario's own SQL. */
  readonly pool: pg.Pool
  drop(): Promise<void>
}

export interface BenchCluster {
  readonly url: string
  readonly serverVersion: string
  createDatabase(prefix: string): Promise<BenchDatabase>
  stop(): Promise<void>
}

export async function startBenchCluster(): Promise<BenchCluster> {
  const dir = await mkdtemp(join(tmpdir(), 'sluice-bench-pg-'))
  // As root, PostgreSQL runs as the `postgres` user, which must reach the directory.
  await chmod(dir, 0o755)
  const cluster = await startEmbeddedPostgres({ dir, port: await freePort() })
  const admin = new pg.Client({ connectionString: cluster.url })
  await admin.connect()
  const { rows } = await admin.query<{ server_version: string }>('SHOW server_version')
  await admin.end()
  return {
    url: cluster.url,
    serverVersion: rows[0]!.server_version,
    async createDatabase(prefix) {
      const name = `${prefix}_${randomBytes(3).toString('hex')}`
      const client = new pg.Client({ connectionString: cluster.url })
      await client.connect()
      await client.query(`CREATE DATABASE ${name}`)
      await client.end()
      const url = withDatabase(cluster.url, name)
      const pool = new pg.Pool({ connectionString: url, max: 4 })
      return {
        url,
        name,
        pool,
        async drop() {
          await pool.end()
          const c = new pg.Client({ connectionString: cluster.url })
          await c.connect()
          await c.query(`SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = $1 AND NOT active`, [name])
          await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
          await c.end()
        },
      }
    },
    async stop() {
      await cluster.stop()
      await rm(dir, { recursive: true, force: true })
    },
  }
}

function withDatabase(url: string, database: string): string {
  const parsed = new URL(url)
  parsed.pathname = `/${database}`
  return parsed.toString()
}
