/**
 * The shape routes through `app.request()`, over the shape logs in memory: no database, no
 * socket (as hono tests its middleware). What a response says — status, headers, body — for
 * bad offsets and handles, a gone handle, complete chunks against live reads, the up-to-date
 * control, and the requests an SSE stream refuses before it opens.
 */
import { IncomingMessage, ServerResponse } from 'node:http'
import { Socket } from 'node:net'
import { describe, expect, it } from 'vitest'
import { lsn } from '../../src/pg/lsn.js'
import { ITEMS, memoryApp } from '../support/memory-app.js'
import { waitFor } from '../support/wait.js'

const UNCACHEABLE = { 'cache-control': 'no-store', 'surrogate-control': 'no-store' }
const ROWS = [
  { key: '"public"."items"/"1"', value: { id: '1', title: 'one' }, headers: { operation: 'insert' } },
  { key: '"public"."items"/"2"', value: { id: '2', title: 'two' }, headers: { operation: 'insert' } },
]

function change(id: number, title: string) {
  return { key: `"public"."items"/"${id}"`, value: { id: String(id), title }, headers: { operation: 'update' } }
}

function upToDate(lastSeenLsn: string) {
  return { headers: { control: 'up-to-date', global_last_seen_lsn: lastSeenLsn } }
}

/** The app with one `items` shape whose snapshot is complete, and its handle. */
async function withShape(options: Parameters<typeof memoryApp>[0] = {}) {
  const parts = memoryApp(options)
  const shape = await parts.shapes.getOrCreate({ table: ITEMS.table, replica: 'default', log: 'full' }, ITEMS)
  parts.shapes.completeSnapshot(shape, ROWS)
  return { ...parts, shape, handle: shape.stored.handle, id: shape.stored.id }
}

/**
 * Writes a log past the snapshot: a complete chunk `(0_0, 100_1]`, then an open tail to 200_0,
 * with every transaction up to LSN 300 processed.
 */
function writeLog(parts: Awaited<ReturnType<typeof withShape>>): void {
  parts.log.append(parts.id, '100_0', change(1, 'uno'))
  parts.log.append(parts.id, '100_1', change(2, 'dos'))
  parts.log.closeChunk(parts.id, '100_1')
  parts.log.append(parts.id, '200_0', change(1, 'eins'))
  parts.log.committedLsn = lsn(300n)
}

async function json(response: Response): Promise<unknown> {
  return JSON.parse(await response.text()) as unknown
}

/** Headers as a plain object, without the ones every response carries. */
function headersOf(response: Response): Record<string, string> {
  const headers = Object.fromEntries(response.headers)
  for (const name of ['x-request-id', 'access-control-allow-origin', 'access-control-expose-headers', 'vary', 'content-length']) delete headers[name]
  return headers
}

describe('offset and handle validation', () => {
  it.each([
    ['table=items', { offset: ['is required'] }],
    ['table=items&offset=abc', { offset: ['must be -1, now, or <tx>_<op> (two decimal numbers, op may be inf)'] }],
    ['table=items&offset=1_x&handle=00000000-1', { offset: ['must be -1, now, or <tx>_<op> (two decimal numbers, op may be inf)'] }],
    ['table=items&offset=0_0', { handle: ['is required unless offset is -1 or now'] }],
    ['table=items&offset=-1&live=true', { live: ['cannot be used with offset -1 or now'] }],
    ['table=items%3B&offset=-1', { table: ['unexpected ";" at position 5 of "items;"'] }],
    ['offset=-1', { table: ['is required'] }],
  ])('answers %s with 400 naming the parameter, uncacheable, without retry-after', async (query, errors) => {
    const { app } = memoryApp()
    const response = await app.request(`/v1/shape?${query}`)
    expect(response.status).toBe(400)
    expect(headersOf(response)).toEqual({ ...UNCACHEABLE, 'content-type': 'application/json' })
    expect(await json(response)).toEqual({ message: 'Invalid request', errors })
  })

  it('answers a table the catalog does not have with 400 naming table (a pg/ TableError, mapped by http/)', async () => {
    const { app } = memoryApp()
    const response = await app.request('/v1/shape?table=nope&offset=-1')
    expect(response.status).toBe(400)
    expect(await json(response)).toEqual({
      message: 'Invalid request',
      errors: { table: ['table "public"."nope" does not exist (or is not visible to Sluice\'s role)'] },
    })
  })
})

describe('unknown routes', () => {
  it('answers 404 through the error table: uncacheable JSON naming the method and path', async () => {
    const { app } = memoryApp()
    const response = await app.request('/v2/shape?table=items', { method: 'PUT' })
    expect(response.status).toBe(404)
    expect(headersOf(response)).toEqual({ ...UNCACHEABLE, 'content-type': 'application/json' })
    expect(await json(response)).toEqual({ message: 'Not found: PUT /v2/shape' })
  })
})

describe('must-refetch', () => {
  it.each([
    ['an unknown handle', 'deadbeef-1'],
    ['a handle this server cannot have issued', 'not-a-handle'],
  ])('answers %s with 409, the current handle, and a minute of shared caching', async (_name, handle) => {
    const { app, handle: current } = await withShape()
    const response = await app.request(`/v1/shape?table=items&offset=0_0&handle=${handle}`)
    expect(response.status).toBe(409)
    expect(headersOf(response)).toEqual({
      'cache-control': 'public, max-age=60, must-revalidate',
      'electric-handle': current,
      'content-type': 'application/json',
    })
    expect(await json(response)).toEqual([{ headers: { control: 'must-refetch' } }])
  })

  it('answers a long-poll whose shape is dropped while it waits with 409 and the new handle', async () => {
    const parts = await withShape()
    const waiting = parts.app.request(`/v1/shape?table=items&offset=0_0&handle=${parts.handle}&live=true`)
    await waitFor(() => expect(parts.log.waiting(parts.id)).toBe(1))
    await parts.shapes.drop(parts.shape)
    const response = await waiting
    expect(response.status).toBe(409)
    const replacement = response.headers.get('electric-handle')
    expect(replacement).toMatch(/^[0-9a-f]{8}-[0-9]+$/)
    expect(replacement).not.toBe(parts.handle)
  })
})

describe('caching: complete chunks against live reads', () => {
  it('gives the first snapshot chunk the long initial max-age and the schema, without up-to-date', async () => {
    const { app, handle } = await withShape()
    const response = await app.request('/v1/shape?table=items&offset=-1')
    expect(response.status).toBe(200)
    const headers = headersOf(response)
    expect(headers).toEqual({
      'cache-control': 'public, max-age=604800, s-maxage=3600, stale-while-revalidate=2629746',
      'content-type': 'application/json',
      'electric-handle': handle,
      'electric-offset': '0_0',
      'electric-has-data': 'true',
      'electric-schema': '{"id":{"type":"int4","pk_index":0,"not_null":true},"title":{"type":"text"}}',
      etag: `"${handle}:-1:0_0"`,
    })
    expect(await json(response)).toEqual(ROWS)
  })

  it('gives a complete log chunk the configured max-age, and the same chunk read live the live one', async () => {
    const parts = await withShape()
    writeLog(parts)
    const chunk = await parts.app.request(`/v1/shape?table=items&offset=0_0&handle=${parts.handle}`)
    expect(chunk.status).toBe(200)
    expect(chunk.headers.get('cache-control')).toBe('public, max-age=60, stale-while-revalidate=300')
    expect(chunk.headers.get('electric-offset')).toBe('100_1')
    expect(chunk.headers.get('electric-up-to-date')).toBeNull()
    expect(chunk.headers.get('electric-cursor')).toBeNull()
    expect(await json(chunk)).toEqual([change(1, 'uno'), change(2, 'dos')])

    const live = await parts.app.request(`/v1/shape?table=items&offset=0_0&handle=${parts.handle}&live=true&cursor=5`)
    expect(live.status).toBe(200)
    expect(live.headers.get('cache-control')).toBe('public, max-age=5, stale-while-revalidate=5')
    expect(live.headers.get('electric-offset')).toBe('100_1')
    expect(live.headers.get('electric-cursor')).toMatch(/^[0-9]+$/)
    expect(live.headers.get('electric-schema')).toBeNull()
    // The chunk does not reach the head (200_0): no up-to-date yet.
    expect(live.headers.get('electric-up-to-date')).toBeNull()
    expect(await json(live)).toEqual([change(1, 'uno'), change(2, 'dos')])
  })
})

describe('the up-to-date control', () => {
  it('ends the open tail with up-to-date carrying the LSN processed', async () => {
    const parts = await withShape()
    writeLog(parts)
    const response = await parts.app.request(`/v1/shape?table=items&offset=100_1&handle=${parts.handle}`)
    expect(response.status).toBe(200)
    expect(response.headers.get('electric-up-to-date')).toBe('')
    expect(response.headers.get('electric-offset')).toBe('200_0')
    // committed 300: everything up to 299 is processed, past the tail's own 200 (docs/ARCHITECTURE.md I16).
    expect(await json(response)).toEqual([change(1, 'eins'), upToDate('299')])
  })

  it('answers a long-poll at the head with the next append, up-to-date at its own end', async () => {
    const parts = await withShape()
    writeLog(parts)
    const waiting = parts.app.request(`/v1/shape?table=items&offset=200_0&handle=${parts.handle}&live=true`)
    await waitFor(() => expect(parts.log.waiting(parts.id)).toBe(1))
    parts.log.append(parts.id, '400_0', change(2, 'zwei'))
    parts.log.committedLsn = lsn(500n)
    parts.log.notify(parts.id)
    const response = await waiting
    expect(response.status).toBe(200)
    expect(response.headers.get('electric-offset')).toBe('400_0')
    expect(await json(response)).toEqual([change(2, 'zwei'), upToDate('400')])
  })

  it('answers a long-poll that waited in vain with an empty up-to-date and a tag no other answer has', async () => {
    let now = 1_000
    const parts = await withShape({ longPollMs: 1, now: () => now++ })
    writeLog(parts)
    const url = `/v1/shape?table=items&offset=200_0&handle=${parts.handle}&live=true`
    const [first, second] = [await parts.app.request(url), await parts.app.request(url)]
    for (const response of [first, second]) {
      expect(response.status).toBe(200)
      expect(response.headers.get('electric-has-data')).toBe('false')
      expect(await json(response)).toEqual([upToDate('299')])
    }
    expect(first.headers.get('etag')).not.toBe(second.headers.get('etag'))
  })
})

describe('SSE: what is refused before the stream opens', () => {
  /** A Node response with no socket: the SSE route writes to one; a refusal never touches it. */
  function nodeEnv() {
    const incoming = new IncomingMessage(new Socket())
    return { incoming, outgoing: new ServerResponse(incoming) }
  }
  const SSE = 'live=true&live_sse=true'

  it('refuses a gone handle with 409 and the current handle, as a long-poll would', async () => {
    const { app, handle } = await withShape()
    const env = nodeEnv()
    const response = await app.request(`/v1/shape?table=items&offset=0_0&handle=deadbeef-1&${SSE}`, {}, env)
    expect(response.status).toBe(409)
    expect(response.headers.get('electric-handle')).toBe(handle)
    expect(env.outgoing.headersSent).toBe(false)
  })

  it('refuses an offset past -1 without a handle with 400', async () => {
    const { app } = memoryApp()
    const env = nodeEnv()
    const response = await app.request(`/v1/shape?table=items&offset=0_0&${SSE}`, {}, env)
    expect(response.status).toBe(400)
    expect(await json(response)).toEqual({ message: 'Invalid request', errors: { handle: ['is required unless offset is -1 or now'] } })
    expect(env.outgoing.headersSent).toBe(false)
  })

  it('refuses a subset snapshot over SSE with 400 naming live_sse', async () => {
    const { app } = await withShape()
    const response = await app.request(`/v1/shape?table=items&offset=-1&${SSE}&subset__limit=1&subset__order_by=id`, {}, nodeEnv())
    expect(response.status).toBe(400)
    expect(await json(response)).toEqual({
      message: 'Invalid request',
      errors: { live_sse: ['subset snapshots are a stable view of the data: SSE does not apply to them'] },
    })
  })

  it('refuses a stream past SLUICE_MAX_LIVE_CONNECTIONS with 503, uncacheable, and a jittered retry-after', async () => {
    const { app } = await withShape({ maxLiveConnections: 0 })
    const env = nodeEnv()
    const response = await app.request(`/v1/shape?table=items&offset=-1&${SSE}`, {}, env)
    expect(response.status).toBe(503)
    expect(response.headers.get('cache-control')).toBe('no-store')
    expect(response.headers.get('surrogate-control')).toBe('no-store')
    expect(Number(response.headers.get('retry-after'))).toBeGreaterThanOrEqual(6)
    expect(Number(response.headers.get('retry-after'))).toBeLessThanOrEqual(10)
    expect(env.outgoing.headersSent).toBe(false)
  })
})
