import { getEventListeners } from 'node:events'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Follower } from '../support/follower.js'

let server: Server
let url: string

beforeAll(async () => {
  // Answers every request up to date, as a live shape log with nothing new does.
  server = createServer((_, response) => {
    response.writeHead(200, { 'content-type': 'application/json', 'electric-handle': 'h-1', 'electric-offset': '0_inf', 'electric-cursor': '1' })
    response.end('[{"headers":{"control":"up-to-date"}}]')
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/shape`
})

afterAll(async () => {
  await new Promise((resolve) => server.close(resolve))
})

describe('Follower', () => {
  // fetch removes the listener it adds to a request's signal only once that request is garbage
  // collected: a signal shared by a long test's requests gathered thousands (CI's
  // MaxListenersExceededWarning lines, from test/consistency.pg.test.ts).
  it('leaves no listener on the caller\'s signal once its requests are answered', async () => {
    const follower = new Follower(() => url, { table: 'items' })
    const stop = new AbortController()
    for (let i = 0; i < 300; i++) expect(await follower.step({ live: true, signal: stop.signal })).toBe(200)
    expect(getEventListeners(stop.signal, 'abort')).toHaveLength(0)
  })

  it('adds none while requests wait either, and still ends them when the caller\'s signal aborts', async () => {
    const waiting = createServer(() => undefined)
    await new Promise<void>((resolve) => waiting.listen(0, '127.0.0.1', resolve))
    try {
      const followers = Array.from({ length: 20 }, () => new Follower(() => `http://127.0.0.1:${(waiting.address() as AddressInfo).port}/v1/shape`, { table: 'items' }))
      const stop = new AbortController()
      const steps = followers.map((follower) => follower.step({ live: true, signal: stop.signal }))
      // More than the 10 a signal takes before Node warns of a leak.
      expect(getEventListeners(stop.signal, 'abort')).toHaveLength(0)
      stop.abort()
      for (const step of steps) await expect(step).rejects.toThrow()
    } finally {
      waiting.closeAllConnections()
      await new Promise((resolve) => waiting.close(resolve))
    }
  })
})
