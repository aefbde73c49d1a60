/**
 * A shape PostgreSQL can never snapshot is a 400, not a loop (issue 18). On main a `where` that
 * fails at run time in PostgreSQL (`v::int` over a value that is not a number) dropped the
 * shape and answered 409 with a new handle; the refetch made the same shape, which failed the
 * same way, and the client went round forever; a bare EventSource reconnected forever.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTestSluice, type TestSluice } from './support/sluice.js'
import { waitFor } from './support/wait.js'

let sluice: TestSluice

beforeAll(async () => {
  sluice = await startTestSluice()
  await sluice.db.pool.query(`CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, '5'), (2, 'abc')`)
})

afterAll(async () => {
  await sluice?.close()
})

describe('a shape whose snapshot PostgreSQL refuses', () => {
  it('answers 400 on where with PostgreSQL\'s reason, every time, without a retry-after', async () => {
    const url = `${sluice.shapeUrl()}?table=t&offset=-1&where=${encodeURIComponent('v::int > 0')}`
    for (let attempt = 0; attempt < 2; attempt++) {
      const response = await fetch(url)
      expect(response.status).toBe(400)
      expect(response.headers.get('retry-after')).toBeNull()
      expect(await response.json()).toEqual({
        message: 'Invalid request',
        errors: { where: [expect.stringMatching(/^PostgreSQL could not take this shape's snapshot: invalid input syntax for type integer: "abc" \(SQLSTATE 22P02\)$/)] },
      })
    }
  })

  it('answers a bare EventSource\'s reconnection 400, so it stops instead of reconnecting forever', async () => {
    const url = `${sluice.shapeUrl()}?table=t&offset=-1&live=true&live_sse=true&where=${encodeURIComponent('v::int >= 0')}`
    // The first stream starts before the snapshot fails, and ends when it does.
    const first = await fetch(url)
    expect(first.status).toBe(200)
    await first.text()
    const again = await fetch(url)
    expect(again.status).toBe(400)
    expect(((await again.json()) as { errors: { where: string[] } }).errors.where[0]).toMatch(/invalid input syntax for type integer/)
  })

  it('serves the shape once the data allows it', async () => {
    await sluice.db.pool.query(`UPDATE t SET v = '7' WHERE id = 2`)
    await waitFor(async () => {
      const response = await fetch(`${sluice.shapeUrl()}?table=t&offset=-1&where=${encodeURIComponent('v::int > 0')}`)
      expect(response.status).toBe(200)
    }, 15_000, 250)
  })
})
