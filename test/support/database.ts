/**
 * A fresh database per suite inside the shared test cluster, so suites never see each
 * other's tables, slots or publications.
 */
import { inject } from 'vitest'
import pg from 'pg'
import { randomBytes } from 'node:crypto'
import { waitFor } from './wait.js'

export interface TestDatabase {
  readonly url: string
  readonly name: string
  /** A pooled client for the test's own SQL. */
  readonly pool: pg.Pool
  drop(): Promise<void>
}

/** PostgreSQL's SQLSTATE for a connection terminated by an administrator (or by a forced drop). */
const ADMIN_SHUTDOWN = '57P01'

export async function createTestDatabase(): Promise<TestDatabase> {
  const adminUrl = inject('databaseUrl')
  const name = `sluice_test_${randomBytes(4).toString('hex')}`
  const admin = new pg.Client({ connectionString: adminUrl })
  await admin.connect()
  await admin.query(`CREATE DATABASE ${name}`)
  await admin.end()
  const url = withDatabase(adminUrl, name)
  const pool = new pg.Pool({ connectionString: url, max: 8 })
  return {
    url,
    name,
    pool,
    async drop() {
      // `end` lets go of connections before they have closed, and DROP … WITH (FORCE) below then
      // terminates them (57P01): expected here, where without a listener it is an uncaught error.
      pool.on('error', (error: Error & { code?: string }) => {
        if (error.code !== ADMIN_SHUTDOWN) throw error
      })
      await pool.end()
      const client = new pg.Client({ connectionString: adminUrl })
      await client.connect()
      // Slots pin the database; a suite that crashed may have left one behind, and a server that
      // has just stopped may hold its own for a moment (its walsender ends after the socket closes).
      await waitFor(async () => {
        await client.query(`SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = $1 AND NOT active`, [name])
        const { rows } = await client.query(`SELECT 1 FROM pg_replication_slots WHERE database = $1`, [name])
        if (rows.length > 0) throw new Error(`a replication slot of ${name} is still active`)
      }, 10_000)
      await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
      await client.end()
    },
  }
}

function withDatabase(url: string, database: string): string {
  const parsed = new URL(url)
  parsed.pathname = `/${database}`
  return parsed.toString()
}
