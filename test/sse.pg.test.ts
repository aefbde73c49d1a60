/**
 * Server-Sent Events as a plain browser `EventSource` uses them (PROTOCOL: Server-Sent Events,
 * the [sluice] extension): snapshot then live on one connection, `id:` + `Last-Event-ID` resume
 * across cut TCP connections without gaps or duplicates, must-refetch for a stale handle, and
 * the wire details (headers, `retry:`, keep-alive comments, the server-side end).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTestSluice, waitForReplication, type TestSluice } from './support/sluice.js'
import { SseFollower } from './support/sse-follower.js'
import { startTcpProxy, type TcpProxy } from './support/tcp-proxy.js'
import { waitFor } from './support/wait.js'

let sluice: TestSluice
let proxy: TcpProxy

beforeAll(async () => {
  sluice = await startTestSluice({ sseTimeoutMs: 3_000, sseKeepAliveMs: 300, sseRetryMs: 50, allowShapeDeletion: true })
  await sluice.db.pool.query(`CREATE TABLE todos (id int PRIMARY KEY, title text)`)
  await sluice.db.pool.query(`INSERT INTO todos SELECT g, 'row ' || g FROM generate_series(1, 50) g`)
  proxy = await startTcpProxy(() => {
    const url = new URL(sluice.server.url)
    return { host: url.hostname, port: Number(url.port) }
  })
})

afterAll(async () => {
  await proxy?.close()
  await sluice?.close()
})

async function tableTitles(table: string): Promise<Record<string, string | null>> {
  const { rows } = await sluice.db.pool.query<{ id: string; title: string | null }>(`SELECT id::text, title FROM ${table}`)
  return Object.fromEntries(rows.map((row) => [row.id, row.title]))
}

/** Reads a response body as text until `done(text)` or `ms` pass, then cancels it. */
async function readFor(response: Response, ms: number, done: (text: string) => boolean = () => false): Promise<string> {
  const reader = response.body!.getReader()
  const decoder = new TextDecoder()
  let text = ''
  const deadline = Date.now() + ms
  for (;;) {
    const left = deadline - Date.now()
    if (left <= 0 || done(text)) break
    const next = await Promise.race([reader.read(), new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), left))])
    if (!next || next.done) break
    text += decoder.decode(next.value, { stream: true })
  }
  await reader.cancel().catch(() => {})
  return text
}

function dataEvents(text: string): { id?: string; data: Record<string, any> }[] {
  return text
    .split('\n\n')
    .filter((block) => block.includes('data: '))
    .map((block) => {
      const lines = block.split('\n')
      const id = lines.find((line) => line.startsWith('id: '))?.slice(4)
      const data = JSON.parse(lines.find((line) => line.startsWith('data: '))!.slice(6)) as Record<string, any>
      return id === undefined ? { data } : { id, data }
    })
}

describe('SSE for a plain EventSource', () => {
  it('streams the snapshot and then live changes on one connection', async () => {
    const follower = new SseFollower(`${sluice.shapeUrl()}?table=todos&offset=-1&live=true&live_sse=true`)
    try {
      await waitFor(() => expect(follower.upToDates).toBeGreaterThan(0))
      expect(Object.keys(follower.titles())).toHaveLength(50)
      expect(follower.lastEventId).toMatch(/^[0-9a-f]{8}-[0-9]+:[0-9]+_(inf|[0-9]+)$/)

      await sluice.db.pool.query(`INSERT INTO todos VALUES (51, 'fifty-one')`)
      await sluice.db.pool.query(`UPDATE todos SET title = 'one' WHERE id = 1`)
      await sluice.db.pool.query(`DELETE FROM todos WHERE id = 2`)
      await waitFor(async () => expect(follower.titles()).toEqual(await tableTitles('todos')))
      // Well within the 3 s server-side end: still the first connection.
      expect(follower.opens).toBe(1)
      expect(follower.duplicates).toEqual([])
      expect(follower.errors).toEqual([])
    } finally {
      follower.close()
    }
  })

  it('sends the SSE headers, retry:, one data event per message, ids per batch and keep-alive comments', async () => {
    const response = await fetch(`${sluice.shapeUrl()}?table=todos&offset=-1&live=true&live_sse=true`, {
      headers: { origin: 'http://example.test', 'x-request-id': 'sse-1' },
    })
    expect(response.status).toBe(200)
    expect(response.headers.get('content-type')).toBe('text/event-stream')
    expect(response.headers.get('cache-control')).toBe('public, max-age=2')
    expect(response.headers.get('x-accel-buffering')).toBe('no')
    expect(response.headers.get('electric-handle')).toMatch(/^[0-9a-f]{8}-[0-9]+$/)
    expect(response.headers.get('electric-offset')).toBe('-1')
    expect(response.headers.get('electric-cursor')).toMatch(/^[0-9]+$/)
    expect(response.headers.get('electric-schema')).toContain('"id"')
    expect(response.headers.get('access-control-allow-origin')).toBe('http://example.test')
    expect(response.headers.get('access-control-expose-headers')).toContain('electric-handle')
    expect(response.headers.get('vary')).toBe('origin, last-event-id')
    expect(response.headers.get('x-request-id')).toBe('sse-1')

    const text = await readFor(response, 2_000, (t) => t.includes(': keep-alive\n\n'))
    expect(text.startsWith('retry: 50\n\n')).toBe(true)
    expect(text).toContain(': keep-alive\n\n')
    const events = dataEvents(text)
    const handle = response.headers.get('electric-handle')
    // Snapshot rows, snapshot-end, up-to-date; only the last event of a batch has an id.
    expect(events.at(-1)!.data).toEqual({ headers: { control: 'up-to-date', global_last_seen_lsn: expect.stringMatching(/^[0-9]+$/) } })
    expect(events.at(-1)!.id).toMatch(new RegExp(`^${handle}:[0-9]+_(inf|[0-9]+)$`))
    expect(events.some((event) => event.data['headers']['control'] === 'snapshot-end')).toBe(true)
    expect(events.filter((event) => event.id !== undefined).length).toBeLessThan(events.length)
  })

  it('ends the stream after the SSE timeout, at a batch boundary', async () => {
    const started = Date.now()
    const response = await fetch(`${sluice.shapeUrl()}?table=todos&offset=now&live=true&live_sse=true`)
    const text = await readFor(response, 10_000)
    const elapsed = Date.now() - started
    expect(elapsed).toBeGreaterThanOrEqual(2_900)
    expect(elapsed).toBeLessThan(6_000)
    // offset=now: no history, one up-to-date at the head.
    expect(dataEvents(text).map((event) => event.data['headers']['control'])).toEqual(['up-to-date'])
  })

  it('resumes with Last-Event-ID after cut TCP connections: exactly the table, nothing applied twice', async () => {
    await sluice.db.pool.query(`CREATE TABLE cuts (id int PRIMARY KEY, title text)`)
    await sluice.db.pool.query(`INSERT INTO cuts SELECT g, 'row ' || g FROM generate_series(1, 200) g`)
    const follower = new SseFollower(`${proxy.url}/v1/shape?table=cuts&offset=-1&live=true&live_sse=true`)
    try {
      await waitFor(() => expect(follower.upToDates).toBeGreaterThan(0))
      let cuts = 0
      for (let i = 0; i < 300; i++) {
        const id = 201 + i
        await sluice.db.pool.query(
          `BEGIN; INSERT INTO cuts VALUES (${id}, 'new ${id}'); UPDATE cuts SET title = 'touched ${i}' WHERE id = ${1 + (i % 200)}; DELETE FROM cuts WHERE id = ${id - 50}; COMMIT`,
        )
        if (i % 60 === 30) cuts += proxy.cutAll()
        if (i % 60 === 31) await new Promise((resolve) => setTimeout(resolve, 30))
      }
      await waitForReplication(sluice)
      await waitFor(async () => expect(follower.titles()).toEqual(await tableTitles('cuts')), 20_000)
      expect(cuts).toBeGreaterThanOrEqual(4)
      expect(follower.opens).toBeGreaterThanOrEqual(5)
      expect(follower.duplicates).toEqual([])
      expect(follower.errors).toEqual([])
      expect(follower.mustRefetches).toBe(0)
      const resumed = proxy.requests.filter((head) => /\r\nlast-event-id: [0-9a-f]{8}-[0-9]+:[0-9]+_[0-9inf]+/i.test(head))
      expect(resumed.length).toBeGreaterThanOrEqual(4)
    } finally {
      follower.close()
    }
  })

  it('answers a stale handle in Last-Event-ID with a must-refetch event, then the current shape', async () => {
    const response = await fetch(`${sluice.shapeUrl()}?table=todos&offset=-1&live=true&live_sse=true`, {
      headers: { 'last-event-id': 'deadbeef-1:0_inf' },
    })
    expect(response.status).toBe(200)
    const events = dataEvents(await readFor(response, 2_000, (t) => t.includes('"up-to-date"')))
    expect(events[0]).toEqual({ data: { headers: { control: 'must-refetch' } } })
    expect(events.at(-1)!.data['headers']['control']).toBe('up-to-date')
    const follower = new SseFollower()
    for (const event of events) follower.apply(event.data as never)
    expect(follower.titles()).toEqual(await tableTitles('todos'))
    expect(follower.errors).toEqual([])
  })

  it('an EventSource whose shape is deleted gets must-refetch and rebuilds the table', async () => {
    await sluice.db.pool.query(`CREATE TABLE dropped (id int PRIMARY KEY, title text)`)
    await sluice.db.pool.query(`INSERT INTO dropped VALUES (1, 'a'), (2, 'b')`)
    const follower = new SseFollower(`${sluice.shapeUrl()}?table=dropped&offset=-1&live=true&live_sse=true`)
    try {
      await waitFor(() => expect(follower.upToDates).toBeGreaterThan(0))
      const handle = follower.lastEventId.split(':')[0]!
      const deleted = await fetch(`${sluice.shapeUrl()}?table=dropped&handle=${handle}`, { method: 'DELETE' })
      expect(deleted.status).toBe(202)
      await sluice.db.pool.query(`INSERT INTO dropped VALUES (3, 'c')`)
      await waitFor(() => expect(follower.mustRefetches).toBe(1))
      await waitFor(async () => expect(follower.titles()).toEqual(await tableTitles('dropped')))
      expect(follower.lastEventId.split(':')[0]).not.toBe(handle)
      expect(follower.errors).toEqual([])
    } finally {
      follower.close()
    }
  })

  it('rejects live with offset -1 outside SSE mode, as before', async () => {
    const response = await fetch(`${sluice.shapeUrl()}?table=todos&offset=-1&live=true`)
    expect(response.status).toBe(400)
  })
})

describe('SSE for @electric-sql/client', () => {
  beforeAll(async () => {
    await sluice.db.pool.query(`CREATE TABLE quiet (id int PRIMARY KEY, title text)`)
    await sluice.db.pool.query(`INSERT INTO quiet VALUES (1, 'a')`)
  })

  /** The head of `table` as a non-live client reaches it. */
  async function head(table: string): Promise<{ handle: string; offset: string }> {
    let response = await fetch(`${sluice.shapeUrl()}?table=${table}&offset=-1`)
    const handle = response.headers.get('electric-handle')!
    while (response.headers.get('electric-up-to-date') === null) {
      response = await fetch(`${sluice.shapeUrl()}?table=${table}&handle=${handle}&offset=${response.headers.get('electric-offset')}`)
    }
    return { handle, offset: response.headers.get('electric-offset')! }
  }

  it('at the head sends nothing until a change, then Electric framing: data events only, no id: or retry:', async () => {
    const { handle, offset } = await head('quiet')
    // The query as the client (1.5) sends it: cursor and log always, both SSE flags.
    const response = await fetch(
      `${sluice.shapeUrl()}?cursor=&experimental_live_sse=true&handle=${handle}&live=true&live_sse=true&log=full&offset=${offset}&table=quiet`,
    )
    expect(response.status).toBe(200)
    await sluice.db.pool.query(`INSERT INTO quiet VALUES (2, 'b')`)
    const text = await readFor(response, 5_000, (t) => t.includes('"up-to-date"'))
    expect(text).not.toMatch(/^(id|retry):/m)
    const events = dataEvents(text)
    expect(events.map((event) => event.data['headers']['operation'] ?? event.data['headers']['control'])).toEqual(['insert', 'up-to-date'])
    expect(events[0]!.data['value']).toEqual({ id: '2', title: 'b' })
  })

  it('keeps id: and retry: for an EventSource given a handle and offset but no cursor', async () => {
    const { handle, offset } = await head('quiet')
    const response = await fetch(`${sluice.shapeUrl()}?table=quiet&handle=${handle}&offset=${offset}&live=true&live_sse=true`)
    const text = await readFor(response, 2_000, (t) => t.includes('"up-to-date"'))
    expect(text.startsWith('retry: 50\n\n')).toBe(true)
    expect(dataEvents(text)).toEqual([{ id: `${handle}:${offset}`, data: { headers: { control: 'up-to-date', global_last_seen_lsn: expect.any(String) } } }])
  })
})
