/**
 * `global_last_seen_lsn` with Electric's meaning ("this shape will receive nothing at or below
 * it"): an idle shape's up-to-date reaches the LSN of a write to another table in a non-live
 * response, a long-poll that times out and `offset=now`; a live response with changes carries
 * its own LSN; and an offset built from the value (as the SSE client builds one) misses nothing.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTestSluice, type TestSluice } from './support/sluice.js'

let sluice: TestSluice

beforeAll(async () => {
  sluice = await startTestSluice({ longPollMs: 400 })
  await sluice.db.pool.query(`CREATE TABLE idle (id int PRIMARY KEY, title text)`)
  await sluice.db.pool.query(`CREATE TABLE busy (id int PRIMARY KEY, title text)`)
  await sluice.db.pool.query(`INSERT INTO idle VALUES (1, 'one')`)
})

afterAll(async () => {
  await sluice?.close()
})

type Message = { key?: string; value?: Record<string, string>; headers: Record<string, any> }

async function get(query: string): Promise<{ headers: Headers; body: Message[] }> {
  const response = await fetch(`${sluice.shapeUrl()}?${query}`)
  expect(response.status).toBe(200)
  return { headers: response.headers, body: (await response.json()) as Message[] }
}

/** Follows a shape from `-1` to its head; returns its handle and offset. */
async function headOf(table: string): Promise<{ handle: string; offset: string }> {
  let { headers } = await get(`table=${table}&offset=-1`)
  const handle = headers.get('electric-handle')!
  while (headers.get('electric-up-to-date') === null) {
    ;({ headers } = await get(`table=${table}&handle=${handle}&offset=${headers.get('electric-offset')}`))
  }
  return { handle, offset: headers.get('electric-offset')! }
}

/** Long-polls from `offset` (as a client does, across timeouts) until a response brings changes. */
async function nextChanges(table: string, handle: string, offset: string): Promise<Message[]> {
  for (;;) {
    const { headers, body } = await get(`table=${table}&handle=${handle}&offset=${offset}&live=true`)
    if (body.some((m) => m.key !== undefined)) return body
    offset = headers.get('electric-offset')!
  }
}

function lastSeen(body: Message[]): bigint {
  const last = body.at(-1)!
  expect(last.headers['control']).toBe('up-to-date')
  return BigInt(last.headers['global_last_seen_lsn'] as string)
}

describe('global_last_seen_lsn', () => {
  let idle: { handle: string; offset: string }
  let busyLsn: bigint

  beforeAll(async () => {
    idle = await headOf('idle')
    const busy = await headOf('busy')
    const waiting = nextChanges('busy', busy.handle, busy.offset)
    await sluice.db.pool.query(`INSERT INTO busy VALUES (1, 'written while idle waits')`)
    const body = await waiting
    busyLsn = BigInt(body[0]!.headers['lsn'] as string)
    // Electric's rule for a live response with changes: the LSN of those changes.
    expect(lastSeen(body)).toBe(busyLsn)
  })

  it('reaches a write to another table in a non-live response of an idle shape, whose offset stays', async () => {
    const { headers, body } = await get(`table=idle&handle=${idle.handle}&offset=${idle.offset}`)
    expect(body).toHaveLength(1)
    expect(lastSeen(body)).toBeGreaterThanOrEqual(busyLsn)
    expect(headers.get('electric-offset')).toBe(idle.offset)
  })

  it('reaches it in a long-poll that times out and in offset=now', async () => {
    const timedOut = await get(`table=idle&handle=${idle.handle}&offset=${idle.offset}&live=true`)
    expect(lastSeen(timedOut.body)).toBeGreaterThanOrEqual(busyLsn)
    const now = await get(`table=idle&offset=now`)
    expect(lastSeen(now.body)).toBeGreaterThanOrEqual(busyLsn)
  })

  it('makes an offset <value>_0 that misses nothing of the idle shape and repeats nothing', async () => {
    const { body } = await get(`table=idle&handle=${idle.handle}&offset=${idle.offset}`)
    const resumeAt = `${lastSeen(body)}_0`
    const empty = await get(`table=idle&handle=${idle.handle}&offset=${resumeAt}`)
    expect(empty.body).toEqual([expect.objectContaining({ headers: expect.objectContaining({ control: 'up-to-date' }) })])

    const waiting = nextChanges('idle', idle.handle, resumeAt)
    await sluice.db.pool.query(`INSERT INTO idle VALUES (2, 'two')`)
    const changes = await waiting
    expect(changes.filter((m) => m.key !== undefined).map((m) => m.value)).toEqual([{ id: '2', title: 'two' }])
  })
})
