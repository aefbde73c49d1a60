/**
 * Many waiting live requests in one Sluice process (docs/ARCHITECTURE.md I20), the `waiters`
 * bench scenario at a test's size: 2,000 requests at the head of one shape, half long-polls and
 * half SSE streams, held by raw sockets of a separate process. Every one of them gets the next
 * commit, and the server's resident memory grows by less than 12 KB per waiting request (it grew
 * by about 21 KB when each long-poll held its own Hono context, promises, timer and abort signal).
 * Sluice runs in a child process of its own, so the memory is the server's alone.
 */
import type { ChildProcess } from 'node:child_process'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { collect, memory, openOn, pathsFor, startGenerator, startWaiterServer, stopChild, stopGenerator, waitForCount } from '../bench/support/waiter-control.js'
import { createTestDatabase, type TestDatabase } from './support/database.js'

const WAITERS = 2_000
const MAX_BYTES_PER_WAITER = 12_000
const SOURCES = ['127.0.0.2', '127.0.0.3']

let db: TestDatabase
let server: ChildProcess
let port: number

beforeAll(async () => {
  db = await createTestDatabase()
  await db.pool.query(`CREATE TABLE items (id bigint PRIMARY KEY, title text NOT NULL)`)
  await db.pool.query(`INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 10) g`)
  ;({ server, port } = await startWaiterServer(db.url))
}, 60_000)

afterAll(async () => {
  await stopChild(server)
  await db.drop()
})

describe('waiting live requests', () => {
  it('holds 2,000 long-polls and SSE streams at under 12 KB each, and the next commit reaches every one', async () => {
    // Code compiled and lazily built state made before the first measurement.
    const warm = startGenerator()
    await openOn(warm, { ...(await pathsFor(port, 'sluice')), port, count: 100, localAddresses: SOURCES, firstIndex: 0 })
    await waitForCount(server, 100)
    await stopGenerator(warm)
    await waitForCount(server, 0)

    const before = await memory(server)
    const clients = startGenerator()
    try {
      await openOn(clients, { ...(await pathsFor(port, 'sluice')), port, count: WAITERS, localAddresses: SOURCES, firstIndex: 0 })
      await waitForCount(server, WAITERS)
      const after = await memory(server)
      expect((after.rss - before.rss) / WAITERS).toBeLessThan(MAX_BYTES_PER_WAITER)

      const marker = `commit-${Date.now()}`
      const collecting = collect(clients, marker, 60_000)
      await db.pool.query(`UPDATE items SET title = $1 WHERE id = 1`, [marker])
      const { arrivals, missing, errors } = await collecting
      expect({ arrived: arrivals.length, missing, errors }).toEqual({ arrived: WAITERS, missing: 0, errors: 0 })
    } finally {
      await stopGenerator(clients)
    }
  }, 180_000)
})
