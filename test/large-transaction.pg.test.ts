/**
 * One transaction of a million rows passes through whole and at once: readers never see part
 * of it (every up-to-date they get has none or all of its rows), and afterwards the shape holds
 * every row. It comes in many bounded chunks, as Electric's do, not as one huge response. Its
 * peak memory is measured by `npm run bench -- largetx`.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Follower } from './support/follower.js'
import { startTestSluice, waitForReplication, type TestSluice } from './support/sluice.js'

const ROWS = 1_000_000
const CHUNK_BYTES = 10 * 1024 * 1024
let sluice: TestSluice

beforeAll(async () => {
  sluice = await startTestSluice({ shutdownTimeoutMs: 100, chunkBytes: CHUNK_BYTES })
  await sluice.db.pool.query(`CREATE TABLE big_tx (id int PRIMARY KEY, v int NOT NULL)`)
})

afterAll(async () => {
  await sluice?.close()
})

describe('a 1,000,000-row transaction', () => {
  it('becomes visible whole, at its commit', async () => {
    const follower = new Follower(() => sluice.shapeUrl(), { table: 'big_tx' })
    const bodyBytes: number[] = []
    follower.fetchWith = async (input, init) => {
      const response = await fetch(input, init)
      const body = await response.arrayBuffer()
      bodyBytes.push(body.byteLength)
      return new Response(body, { status: response.status, headers: response.headers })
    }
    await follower.catchUp()
    const seenAtUpToDate = new Set<number>()
    const controller = new AbortController()
    const watching = (async () => {
      while (!controller.signal.aborted) {
        try {
          await follower.step({ live: true, signal: controller.signal })
          if (follower.upToDate) seenAtUpToDate.add(follower.rows.size)
        } catch (error) {
          if (controller.signal.aborted) break
          // A kept-alive connection the server closed while this busy process applied a chunk
          // fails the next request ("fetch failed", ECONNRESET): clients retry that, so does this one.
          if (!(error instanceof TypeError)) throw error
        }
      }
    })()

    await sluice.db.pool.query(`INSERT INTO big_tx SELECT g, g % 1000 FROM generate_series(1, ${ROWS}) g`)
    await waitForReplication(sluice, 120_000)
    // Let the live follower reach the transaction on its own, then stop it (one request at a time).
    const deadline = Date.now() + 60_000
    while (!seenAtUpToDate.has(ROWS) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 100))
    controller.abort()
    await watching.catch(() => undefined)
    if (!seenAtUpToDate.has(ROWS)) await follower.catchUp()

    expect(follower.rows.size).toBe(ROWS)
    expect(follower.rows.get(`"public"."big_tx"/"${ROWS}"`)).toEqual({ id: String(ROWS), v: String(ROWS % 1000) })
    expect([...seenAtUpToDate].filter((n) => n !== 0 && n !== ROWS)).toEqual([])
    // One transaction, one LSN: every change shares it, and offsets are unique.
    expect(new Set(follower.changeIds.map((id) => id.split('/')[0])).size).toBe(1)
    expect(new Set(follower.changeIds).size).toBe(ROWS)
    // Bounded chunks: none larger than the limit plus the one entry that closed it (and the
    // array's brackets and an up-to-date), and the transaction spread over many of them.
    expect(Math.max(...bodyBytes)).toBeLessThan(CHUNK_BYTES + 1_024)
    expect(bodyBytes.filter((bytes) => bytes > CHUNK_BYTES / 2).length).toBeGreaterThan(10)
  }, 180_000)
})
