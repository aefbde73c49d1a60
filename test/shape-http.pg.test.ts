/**
 * The HTTP contract on a real server: chunking and immutable chunk URLs, ETag/304,
 * long-poll wake-up and timeout, DELETE → 409 → refetch, and errors in the protocol's shape.
 */
import { ShapeStream, type Row } from '@electric-sql/client'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { parseShapeHandle } from '../src/shapes/shape-handle.js'
import { shapeOf } from './support/electric.js'
import { Follower } from './support/follower.js'
import { startTestSluice, waitForReplication, type TestSluice } from './support/sluice.js'
import { waitFor } from './support/wait.js'

const LONG_POLL_MS = 1_500
let sluice: TestSluice

beforeAll(async () => {
  sluice = await startTestSluice({ chunkBytes: 10_000, longPollMs: LONG_POLL_MS, allowShapeDeletion: true })
  const { pool } = sluice.db
  await pool.query(`CREATE TABLE big (id int PRIMARY KEY, payload text)`)
  await pool.query(`INSERT INTO big SELECT g, repeat('x', 20) FROM generate_series(1, 10000) g`)
  await pool.query(`CREATE TABLE live_items (id int PRIMARY KEY, title text)`)
  await pool.query(`CREATE TABLE dropped_while_waiting (id int PRIMARY KEY, title text)`)
  await pool.query(`CREATE TABLE deletable (id int PRIMARY KEY, title text)`)
  await pool.query(`INSERT INTO deletable VALUES (1, 'a')`)
  await pool.query(`CREATE TABLE numbered (id int PRIMARY KEY, payload text)`)
  await pool.query(`INSERT INTO numbered SELECT g, repeat('n', 40) FROM generate_series(1, 400) g`)
  await pool.query(`CREATE TABLE cached_then_deleted (id int PRIMARY KEY, payload text)`)
  await pool.query(`INSERT INTO cached_then_deleted SELECT g, repeat('y', 20) FROM generate_series(1, 2000) g`)
})

afterAll(async () => {
  await sluice?.close()
})

function url(query: string): string {
  return `${sluice.shapeUrl()}?${query}`
}

describe('chunks', () => {
  it('serves a 10,000-row table in several immutable chunks', async () => {
    const first = await fetch(url('table=big&offset=-1'))
    expect(first.status).toBe(200)
    const handle = first.headers.get('electric-handle')!
    expect(first.headers.get('cache-control')).toBe('public, max-age=604800, s-maxage=3600, stale-while-revalidate=2629746')
    expect(first.headers.get('electric-up-to-date')).toBeNull()
    // Snapshot chunks are numbered as Electric's: the first ends at 0_0, the next at 0_1, ….
    expect(first.headers.get('electric-offset')).toBe('0_0')
    const firstBody = (await first.json()) as unknown[]
    expect(firstBody.length).toBeGreaterThan(10)
    expect(firstBody.length).toBeLessThan(10_000)

    const follower = new Follower(() => sluice.shapeUrl(), { table: 'big' })
    await follower.catchUp()
    expect(follower.rows.size).toBe(10_000)
    expect(follower.offsetsSeen.size).toBeGreaterThan(5)

    // A chunk URL answers the same bytes every time, and its ETag revalidates to 304.
    const chunkUrl = url(`table=big&offset=0_5&handle=${handle}`)
    const a = await fetch(chunkUrl)
    const b = await fetch(chunkUrl)
    const bytesA = Buffer.from(await a.arrayBuffer())
    const bytesB = Buffer.from(await b.arrayBuffer())
    expect(bytesA.length).toBeGreaterThan(1000)
    expect(bytesB.equals(bytesA)).toBe(true)
    const etag = a.headers.get('etag')!
    expect(etag).toBe(b.headers.get('etag'))
    expect(etag).toBe(`"${handle}:0_5:0_6"`)
    expect(a.headers.get('electric-offset')).toBe('0_6')
    expect(a.headers.get('cache-control')).toBe('public, max-age=60, stale-while-revalidate=300')
    const revalidated = await fetch(chunkUrl, { headers: { 'if-none-match': etag } })
    expect(revalidated.status).toBe(304)
    expect(revalidated.headers.get('etag')).toBe(etag)
  })
})

describe('snapshot offsets', () => {
  type Message = { headers: { control?: string } }
  async function get(query: string): Promise<{ offset: string; upToDate: boolean; handle: string; body: Message[] }> {
    const response = await fetch(url(query))
    expect(response.status).toBe(200)
    return {
      offset: response.headers.get('electric-offset')!,
      upToDate: response.headers.get('electric-up-to-date') !== null,
      handle: response.headers.get('electric-handle')!,
      body: (await response.json()) as Message[],
    }
  }

  it('numbers snapshot chunks 0_0, 0_1, … as Electric does, and reads the log from the last one on', async () => {
    const first = await get('table=numbered&offset=-1')
    const offsets = [first.offset]
    let last = first
    while (!last.body.some((m) => m.headers.control === 'snapshot-end')) {
      last = await get(`table=numbered&offset=${last.offset}&handle=${first.handle}`)
      expect(last.upToDate).toBe(false)
      offsets.push(last.offset)
    }
    expect(offsets.length).toBeGreaterThan(2)
    expect(offsets).toEqual(offsets.map((_, i) => `0_${i}`))
    expect(last.body.at(-1)!.headers.control).toBe('snapshot-end')
    const end = offsets.at(-1)!
    // At the last chunk, past it, or at 0_inf: the log, empty so far.
    for (const at of [end, `0_${offsets.length + 5}`, '0_inf']) {
      const log = await get(`table=numbered&offset=${at}&handle=${first.handle}`)
      expect([log.offset, log.upToDate, log.body.map((m) => m.headers.control)]).toEqual([at, true, ['up-to-date']])
    }
    expect((await get('table=numbered&offset=now')).offset).toBe(end)

    await sluice.db.pool.query(`UPDATE numbered SET payload = 'changed' WHERE id = 1`)
    await waitForReplication(sluice)
    for (const at of [end, '0_inf']) {
      const log = await get(`table=numbered&offset=${at}&handle=${first.handle}`)
      expect(log.upToDate).toBe(true)
      expect(log.body.filter((m) => !m.headers.control)).toHaveLength(1)
    }
  })
})

describe('complete chunks answered from memory', () => {
  it('answers a repeated chunk URL with the same bytes, its own request id and CORS origin, and 304', async () => {
    const first = await fetch(url('table=big&offset=-1'))
    const handle = first.headers.get('electric-handle')!
    const chunkUrl = url(`table=big&offset=0_3&handle=${handle}`)
    const a = await fetch(chunkUrl, { headers: { origin: 'https://a.example', 'x-request-id': 'first' } })
    const before = await cachedResponses()
    const b = await fetch(chunkUrl, { headers: { origin: 'https://b.example', 'x-request-id': 'second' } })
    expect(await cachedResponses()).toBe(before + 1)

    expect(Buffer.from(await b.arrayBuffer()).equals(Buffer.from(await a.arrayBuffer()))).toBe(true)
    for (const name of ['etag', 'cache-control', 'content-type', 'electric-handle', 'electric-offset', 'electric-schema', 'electric-has-data']) {
      expect(b.headers.get(name), name).toBe(a.headers.get(name))
    }
    expect(b.headers.get('electric-up-to-date')).toBeNull()
    expect(b.headers.get('x-request-id')).toBe('second')
    expect(b.headers.get('access-control-allow-origin')).toBe('https://b.example')
    expect(b.headers.get('vary')).toBe('origin')
    expect(b.headers.get('access-control-expose-headers')).toBe(a.headers.get('access-control-expose-headers'))
    const plain = await fetch(chunkUrl)
    expect(plain.headers.get('access-control-allow-origin')).toBe('*')
    expect(plain.headers.get('vary')).toBeNull()
    expect(plain.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/)

    const revalidated = await fetch(chunkUrl, { headers: { 'if-none-match': a.headers.get('etag')! } })
    expect(revalidated.status).toBe(304)
    expect(revalidated.headers.get('etag')).toBe(a.headers.get('etag'))
    expect(await cachedResponses()).toBe(before + 3)
  })

  it('stops answering a chunk URL from memory once its shape is deleted', async () => {
    const first = await fetch(url('table=cached_then_deleted&offset=-1'))
    const handle = first.headers.get('electric-handle')!
    const chunkUrl = url(`table=cached_then_deleted&offset=0_10&handle=${handle}`)
    expect((await fetch(chunkUrl)).status).toBe(200)
    const before = await cachedResponses()
    expect((await fetch(chunkUrl)).status).toBe(200)
    expect(await cachedResponses()).toBe(before + 1)

    expect((await fetch(url('table=cached_then_deleted'), { method: 'DELETE' })).status).toBe(202)
    const gone = await fetch(chunkUrl)
    expect(gone.status).toBe(409)
    expect(gone.headers.get('electric-handle')).not.toBe(handle)
    expect(await cachedResponses()).toBe(before + 1)
  })
})

/** Responses answered by the in-memory chunk path so far, from /metrics. */
async function cachedResponses(): Promise<number> {
  const text = await (await fetch(`${sluice.server.url}/metrics`)).text()
  return Number(/^sluice_http_cached_chunk_responses_total (\d+)$/m.exec(text)![1])
}

describe('long-poll', () => {
  it('answers a live request at the head when a change commits', async () => {
    const follower = new Follower(() => sluice.shapeUrl(), { table: 'live_items' })
    await follower.catchUp()
    const shapeId = sluice.server.manager.byHandle(parseShapeHandle(follower.handle!)!)!.stored.id
    const request = fetch(url(`table=live_items&offset=${follower.offset}&handle=${follower.handle}&live=true`))
    await waitFor(() => expect(sluice.server.notifier.waiting(shapeId)).toBe(1))
    await sluice.db.pool.query(`INSERT INTO live_items VALUES (1, 'hello')`)
    await waitForReplication(sluice)
    // Woken by the commit (readers are told before it is durable), not by the long-poll timeout.
    expect(sluice.server.notifier.waiting(shapeId)).toBe(0)
    const response = await request
    expect(response.status).toBe(200)
    const body = (await response.json()) as { headers: Record<string, unknown>; value?: unknown }[]
    expect(body[0]!.value).toEqual({ id: '1', title: 'hello' })
    expect(body.at(-1)!.headers['control']).toBe('up-to-date')
    expect(response.headers.get('electric-cursor')).toMatch(/^\d+$/)
    expect(response.headers.get('electric-up-to-date')).toBe('')
    expect(response.headers.get('cache-control')).toBe('public, max-age=5, stale-while-revalidate=5')
  })

  it('answers a waiting long-poll 409 with the new handle when its shape is deleted', async () => {
    const follower = new Follower(() => sluice.shapeUrl(), { table: 'dropped_while_waiting' })
    await follower.catchUp()
    const shapeId = sluice.server.manager.byHandle(parseShapeHandle(follower.handle!)!)!.stored.id
    const request = fetch(url(`table=dropped_while_waiting&offset=${follower.offset}&handle=${follower.handle}&live=true`), {
      headers: { 'x-request-id': 'parked-1', origin: 'https://app.example' },
    })
    await waitFor(() => expect(sluice.server.notifier.waiting(shapeId)).toBe(1))
    expect((await fetch(url(`table=dropped_while_waiting&handle=${follower.handle}`), { method: 'DELETE' })).status).toBe(202)
    const response = await request
    expect(response.status).toBe(409)
    expect(await response.json()).toEqual([{ headers: { control: 'must-refetch' } }])
    expect(response.headers.get('electric-handle')).toMatch(/^[0-9a-f]{8}-\d+$/)
    expect(response.headers.get('electric-handle')).not.toBe(follower.handle)
    // Answered by the hub on the socket: the request's own id and CORS origin still come back.
    expect(response.headers.get('x-request-id')).toBe('parked-1')
    expect(response.headers.get('access-control-allow-origin')).toBe('https://app.example')
  })

  it('answers only up-to-date after SLUICE_LONG_POLL_MS when nothing changes', async () => {
    await waitForReplication(sluice)
    const follower = new Follower(() => sluice.shapeUrl(), { table: 'live_items' })
    await follower.catchUp()
    const started = Date.now()
    const response = await fetch(url(`table=live_items&offset=${follower.offset}&handle=${follower.handle}&live=true&cursor=5`))
    const elapsed = Date.now() - started
    expect(response.status).toBe(200)
    expect(await response.json()).toEqual([{ headers: { control: 'up-to-date', global_last_seen_lsn: expect.stringMatching(/^\d+$/) } }])
    expect(response.headers.get('electric-offset')).toBe(follower.offset)
    expect(Number(response.headers.get('electric-cursor'))).toBeGreaterThan(5)
    expect(elapsed).toBeGreaterThanOrEqual(LONG_POLL_MS - 50)
  })
})

describe('DELETE /v1/shape', () => {
  it('makes clients refetch and end with the right rows', async () => {
    const stream = new ShapeStream({ url: sluice.shapeUrl(), params: { table: 'deletable' } })
    const shape = shapeOf(stream)
    expect(await shape.rows).toEqual([{ id: 1, title: 'a' }])
    const oldHandle = stream.shapeHandle!

    const deleted = await fetch(url('table=deletable'), { method: 'DELETE' })
    expect(deleted.status).toBe(202)
    const stale = await fetch(url(`table=deletable&offset=0_inf&handle=${oldHandle}`))
    expect(stale.status).toBe(409)
    expect(await stale.json()).toEqual([{ headers: { control: 'must-refetch' } }])
    const newHandle = stale.headers.get('electric-handle')
    expect(newHandle).toBeTruthy()
    expect(newHandle).not.toBe(oldHandle)

    await sluice.db.pool.query(`INSERT INTO deletable VALUES (2, 'b')`)
    await waitFor(() => expect(sortRows(shape.currentRows)).toEqual([{ id: 1, title: 'a' }, { id: 2, title: 'b' }]))
    await waitFor(() => expect(stream.shapeHandle).not.toBe(oldHandle))
    shape.unsubscribeAll()

    expect((await fetch(url('table=deletable&handle=00000000-1'), { method: 'DELETE' })).status).toBe(404)
  })
})

describe('offset=now, log=changes_only and HEAD', () => {
  it('answers offset=now with an immediate up-to-date at the head, then only later changes', async () => {
    await sluice.db.pool.query(`INSERT INTO live_items VALUES (50, 'old') ON CONFLICT DO NOTHING`)
    await waitForReplication(sluice)
    const now = await fetch(url('table=live_items&offset=now'))
    expect(now.status).toBe(200)
    expect(await now.json()).toEqual([{ headers: { control: 'up-to-date', global_last_seen_lsn: expect.any(String) } }])
    expect(now.headers.get('electric-up-to-date')).toBe('')
    const follower = new Follower(() => sluice.shapeUrl(), { table: 'live_items' })
    follower.handle = now.headers.get('electric-handle')!
    follower.offset = now.headers.get('electric-offset')!
    await sluice.db.pool.query(`INSERT INTO live_items VALUES (51, 'new')`)
    await waitForReplication(sluice)
    await follower.catchUp()
    expect([...follower.rows.keys()]).toEqual(['"public"."live_items"/"51"'])
  })

  it('serves log=changes_only without snapshot rows', async () => {
    const follower = new Follower(() => sluice.shapeUrl(), { table: 'deletable', log: 'changes_only' }, { partial: true })
    await follower.catchUp()
    expect(follower.rows.size).toBe(0)
    await sluice.db.pool.query(`UPDATE deletable SET title = 'changed' WHERE id = 1`)
    await sluice.db.pool.query(`INSERT INTO deletable VALUES (3, 'c')`)
    await waitForReplication(sluice)
    await follower.catchUp()
    expect(follower.sortedRows()).toEqual([
      { id: '1', title: 'changed' },
      { id: '3', title: 'c' },
    ])
  })

  it('answers HEAD like GET without a body', async () => {
    const response = await fetch(url('table=live_items&offset=-1'), { method: 'HEAD' })
    expect(response.status).toBe(200)
    expect(response.headers.get('electric-handle')).toBeTruthy()
    expect(await response.text()).toBe('')
  })
})

describe('errors', () => {
  it('answers bad requests with the protocol error shape', async () => {
    const cases: [string, number, string][] = [
      ['offset=-1', 400, 'table'],
      ['table=items', 400, 'offset'],
      ['table=live_items&offset=5_0', 400, 'handle'],
      ['table=live_items&offset=abc', 400, 'offset'],
      ['table=live_items&offset=-1&live=true', 400, 'live'],
      ['table=no_such_table&offset=-1', 400, 'table'],
      ['table=a.b.c&offset=-1', 400, 'table'],
      ['table=live_items&offset=-1&replica=half', 400, 'replica'],
    ]
    for (const [query, status, param] of cases) {
      const response = await fetch(url(query))
      expect(response.status, query).toBe(status)
      expect(response.headers.get('cache-control')).toBe('no-store')
      expect(response.headers.get('surrogate-control')).toBe('no-store')
      const body = (await response.json()) as { message: string; errors: Record<string, string[]> }
      expect(body.message).toBe('Invalid request')
      expect(Object.keys(body.errors), query).toContain(param)
    }
    const missing = await fetch(`${sluice.server.url}/nope`)
    expect(missing.status).toBe(404)
    expect(missing.headers.get('cache-control')).toBe('no-store')
    expect(missing.headers.get('surrogate-control')).toBe('no-store')
    expect(await missing.json()).toEqual({ message: expect.any(String) })
  })

  it('answers an unknown handle with 409 and the current handle', async () => {
    const response = await fetch(url('table=live_items&offset=0_inf&handle=12345678-1'))
    expect(response.status).toBe(409)
    expect(response.headers.get('electric-handle')).toMatch(/^[0-9a-f]{8}-\d+$/)
    expect(response.headers.get('cache-control')).toBe('public, max-age=60, must-revalidate')
  })

  it('answers a malformed handle like an unknown one, as Electric: 409 must-refetch with the current handle', async () => {
    const current = (await fetch(url('table=live_items&offset=-1'))).headers.get('electric-handle')
    for (const query of ['offset=0_inf&handle=not-a-handle', 'offset=0_inf&handle=not-a-handle&live=true', 'offset=5_0&handle=%22%3E&live=true&live_sse=true']) {
      const response = await fetch(url(`table=live_items&${query}`))
      expect(response.status, query).toBe(409)
      expect(response.headers.get('electric-handle')).toBe(current)
      expect(response.headers.get('cache-control')).toBe('public, max-age=60, must-revalidate')
      expect(await response.json()).toEqual([{ headers: { control: 'must-refetch' } }])
    }
  })

  it('allows CORS reads of every electric header', async () => {
    const response = await fetch(url('table=live_items&offset=-1'), { headers: { origin: 'https://app.example' } })
    expect(response.headers.get('access-control-allow-origin')).toBe('https://app.example')
    const exposed = response.headers.get('access-control-expose-headers')!.split(/,\s*/)
    for (const header of ['electric-handle', 'electric-offset', 'electric-schema', 'electric-cursor', 'electric-up-to-date', 'retry-after']) {
      expect(exposed).toContain(header)
    }
    const preflight = await fetch(sluice.shapeUrl(), { method: 'OPTIONS', headers: { origin: 'https://app.example' } })
    expect(preflight.status).toBe(204)
  })

  it('reports health', async () => {
    const response = await fetch(`${sluice.server.url}/v1/health`)
    expect(response.status).toBe(200)
    expect(await response.json()).toEqual({ status: 'active' })
  })
})

function sortRows(rows: Row[]): Row[] {
  return [...rows].sort((a, b) => Number(a['id']) - Number(b['id']))
}
