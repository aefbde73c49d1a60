/**
 * `@electric-sql/client` over a log cut into small chunks. Regression: a transaction larger
 * than a chunk that reached a waiting long-poll ended that response on a complete chunk without
 * an up-to-date, so the client, still live, sent its next long-poll from the head and waited it
 * out before it could apply the rows; an event stream likewise sent no up-to-date after it.
 */
import { isChangeMessage, isControlMessage, ShapeStream } from '@electric-sql/client'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTestSluice, type TestSluice } from './support/sluice.js'
import { waitFor } from './support/wait.js'

const LONG_POLL_MS = 20_000
let sluice: TestSluice

beforeAll(async () => {
  sluice = await startTestSluice({ chunkBytes: 1_024, longPollMs: LONG_POLL_MS })
  await sluice.db.pool.query(`CREATE TABLE chunky (id int PRIMARY KEY, note text NOT NULL)`)
  await sluice.db.pool.query(`INSERT INTO chunky SELECT g, repeat('s', 40) FROM generate_series(1, 100) g`)
})

afterAll(async () => {
  await sluice?.close()
})

async function liveConnections(): Promise<number> {
  const text = await (await fetch(sluice.shapeUrl().replace('/v1/shape', '/metrics'))).text()
  return Number(/^sluice_live_connections (\d+)$/m.exec(text)?.[1])
}

describe('@electric-sql/client with chunks smaller than a transaction', () => {
  it.each([
    { live: 'long-poll', liveSse: false },
    { live: 'SSE', liveSse: true },
  ])('applies a transaction larger than a chunk at once ($live)', async ({ liveSse }) => {
    await sluice.db.pool.query(`DELETE FROM chunky WHERE id > 100`)
    const aborted = new AbortController()
    const stream = new ShapeStream({ url: sluice.shapeUrl(), params: { table: 'chunky' }, liveSse, signal: aborted.signal })
    // The client applies rows at an up-to-date: count the rows seen by each one.
    const rows = new Set<string>()
    let rowsAtUpToDate = 0
    stream.subscribe((messages) => {
      for (const message of messages) {
        if (isChangeMessage(message)) {
          if (message.headers.operation === 'delete') rows.delete(message.key)
          else rows.add(message.key)
        }
        else if (isControlMessage(message) && message.headers.control === 'up-to-date') rowsAtUpToDate = rows.size
      }
    })
    await waitFor(() => expect(rowsAtUpToDate).toBe(100))
    // The client is live now: its long-poll or event stream waits at the server.
    await waitFor(async () => expect(await liveConnections()).toBe(1))

    const started = Date.now()
    await sluice.db.pool.query(`INSERT INTO chunky SELECT g, repeat('t', 40) FROM generate_series(101, 200) g`)
    await waitFor(() => expect(rowsAtUpToDate).toBe(200), LONG_POLL_MS / 2)
    expect(Date.now() - started).toBeLessThan(LONG_POLL_MS / 2)
    aborted.abort()
    stream.unsubscribeAll()
    await waitFor(async () => expect(await liveConnections()).toBe(0))
  }, 60_000)
})
