import { once } from 'node:events'
import type { Socket } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createLogger } from '../src/log.js'
import { createPool } from '../src/pg/pool.js'
import { createTestDatabase, type TestDatabase } from './support/database.js'

let db: TestDatabase
beforeAll(async () => {
  db = await createTestDatabase()
})
afterAll(async () => {
  await db.drop()
})

describe('the shared pool', () => {
  // Found by the soak (seed 282399185): a PostgreSQL fast restart ended a session whose client a
  // snapshot held between two queries, and the unhandled 'error' event ended Sluice.
  it('survives PostgreSQL ending a session whose client is checked out between queries', async () => {
    const pool = createPool(db.url, 2, createLogger('silent'))
    try {
      const client = await pool.connect()
      const { rows } = await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')
      // Watched on the socket, not with an 'error' listener of the test's, which would be the fix.
      const socket = (client as unknown as { connection: { stream: Socket } }).connection.stream
      const closed = once(socket, 'close')
      await db.pool.query('SELECT pg_terminate_backend($1)', [rows[0]!.pid])
      await closed
      await expect(client.query('SELECT 1')).rejects.toThrow()
      client.release(true)
      const after = await pool.query<{ one: number }>('SELECT 1 AS one')
      expect(after.rows).toEqual([{ one: 1 }])
    } finally {
      await pool.end()
    }
  })
})
