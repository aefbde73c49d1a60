/**
 * SSE connections on more than ten shapes at once. Each shape's watcher once added its own
 * listener to one shared AbortSignal, so the eleventh shape made Node warn
 * `MaxListenersExceededWarning` (a leak warning, on every server with a few SSE shapes).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTestSluice, type TestSluice } from './support/sluice.js'
import { SseFollower } from './support/sse-follower.js'
import { waitFor } from './support/wait.js'

const SHAPES = 12
let sluice: TestSluice

beforeAll(async () => {
  sluice = await startTestSluice()
  await sluice.db.pool.query(`CREATE TABLE many (id int PRIMARY KEY, title text)`)
  await sluice.db.pool.query(`INSERT INTO many SELECT g, 'row ' || g FROM generate_series(1, ${SHAPES}) g`)
})

afterAll(async () => {
  await sluice?.close()
})

describe('SSE on many shapes', () => {
  it(`follows ${SHAPES} shapes at once without a MaxListenersExceededWarning`, async () => {
    const warnings: string[] = []
    const onWarning = (warning: Error) => warnings.push(`${warning.name}: ${warning.message}`)
    process.on('warning', onWarning)
    const followers = Array.from(
      { length: SHAPES },
      (_, i) => new SseFollower(`${sluice.shapeUrl()}?table=many&where=${encodeURIComponent(`id = ${i + 1}`)}&offset=-1&live=true&live_sse=true`),
    )
    try {
      await waitFor(() => expect(followers.every((f) => f.upToDates > 0)).toBe(true))
      await sluice.db.pool.query(`UPDATE many SET title = 'changed'`)
      await waitFor(() => expect(followers.every((f) => Object.values(f.titles())[0] === 'changed')).toBe(true))
      // A warning is emitted on the next tick after the listener that crosses the limit.
      await new Promise((resolve) => setImmediate(resolve))
      expect(warnings.filter((w) => w.startsWith('MaxListenersExceededWarning'))).toEqual([])
    } finally {
      process.off('warning', onWarning)
      for (const follower of followers) follower.close()
    }
  })
})
