/**
 * The connection pool every part of Sluice but replication shares. pg's pool listens for errors
 * only on idle clients: a client checked out and between two queries (a snapshot polling for
 * missed commits, a subset waiting for its reader) has no listener, so PostgreSQL ending that
 * session (a restart, `pg_terminate_backend`) would be an unhandled 'error' event that ends the
 * process. With a listener of its own, the client's next query fails instead, and its caller
 * answers 503 or retries as it does for any lost connection.
 */
import pg from 'pg'
import type { Logger } from '../log.js'

export function createPool(connectionString: string, max: number, log: Logger): pg.Pool {
  const pool = new pg.Pool({ connectionString, max, connectionTimeoutMillis: 10_000 })
  pool.on('error', (error) => log.warn({ err: error.message }, 'idle PostgreSQL connection failed'))
  pool.on('connect', (client) => {
    client.on('error', (error) => log.debug({ err: error.message }, 'PostgreSQL connection in use failed'))
  })
  return pool
}
