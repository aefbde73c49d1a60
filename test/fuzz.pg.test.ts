/**
 * Hostile input: 20,000 generated requests (malformed offsets and handles, odd table names
 * with quotes, dots, unicode and NUL bytes, huge and repeated parameters, bad `where` text,
 * odd methods and headers). No 5xx, every error a JSON body of the protocol's shape, and the
 * server still serves correct data afterwards.
 */
import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Agent, request } from 'undici'
import { Follower } from './support/follower.js'
import { startTestSluice, waitForReplication, type TestSluice } from './support/sluice.js'

let sluice: TestSluice
const REQUESTS = 20_000
const CONCURRENCY = 16

beforeAll(async () => {
  sluice = await startTestSluice({ allowShapeDeletion: false, longPollMs: 200 })
  await sluice.db.pool.query(`CREATE TABLE items (id int PRIMARY KEY, title text)`)
  await sluice.db.pool.query(`INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 20) g`)
})

afterAll(async () => {
  await sluice?.close()
})

const piece = fc.oneof(
  fc.constantFrom('', '-1', 'now', '0_0', '0_inf', '1_0', '-2', '0_-1', '99999999999999999999999_0', '1_inf', 'inf', 'NaN', '1e3_0', '٣_0', '0_00'),
  fc.string({ maxLength: 30 }),
  fc.string({ unit: 'binary', maxLength: 20 }),
  fc.stringMatching(/^[0-9]{1,25}_[0-9a-z]{1,12}$/),
)
const table = fc.oneof(
  fc.constantFrom('items', 'public.items', '"items"', 'ITEMS', 'public."items"', 'a.b.c', '"', '""', '"a""b"', 'pg_catalog.pg_class', 'x\u0000y', '"unterminated', 'public.', '.items', 'ünïcödé', '"with space"', 'items;drop table items'),
  fc.string({ maxLength: 40 }),
  fc.string({ unit: 'grapheme', maxLength: 10 }),
)
const handle = fc.oneof(fc.constantFrom('', '00000000-1', 'deadbeef-123', 'x'.repeat(300)), fc.string({ maxLength: 40 }))
const where = fc.oneof(fc.constantFrom('id = 1', '1; DROP TABLE items', 'pg_sleep(10)', "id = 1 -- x", 'id IN (SELECT 1)', '(((('.repeat(50)), fc.string({ maxLength: 50 }))

const requestArbitrary = fc.record({
  method: fc.constantFrom('GET', 'GET', 'GET', 'GET', 'HEAD', 'DELETE', 'POST', 'PUT', 'PATCH', 'OPTIONS'),
  path: fc.constantFrom('/v1/shape', '/shape', '/v1/shape/', '/v1/health', '/v2/shape', '/v1/shape%00', '/metrics'),
  params: fc.array(
    fc.tuple(
      fc.constantFrom('table', 'offset', 'handle', 'live', 'cursor', 'replica', 'log', 'where', 'params[1]', 'columns', 'live_sse', 'secret', 'unknown', 'table'),
      fc.oneof(table, piece, handle, where, fc.constant('x'.repeat(20_000))),
    ),
    { maxLength: 8 },
  ),
  headers: fc.dictionary(
    fc.constantFrom('if-none-match', 'authorization', 'origin', 'last-event-id', 'accept', 'x-request-id'),
    fc.stringMatching(/^[\x20-\x7e]{0,60}$/),
    { maxKeys: 3 },
  ),
})

describe('fuzzed requests', () => {
  it('never answers 5xx and always answers errors in the protocol shape', async () => {
    const base = new URL(sluice.server.url)
    const dispatcher = new Agent({ connections: CONCURRENCY })
    const samples = fc.sample(requestArbitrary, { numRuns: REQUESTS, seed: 20261126 })
    const problems: string[] = []
    let next = 0
    const statuses = new Map<number, number>()

    const worker = async () => {
      while (next < samples.length && problems.length < 20) {
        const sample = samples[next++]!
        const url = new URL(sample.path, base)
        for (const [k, v] of sample.params) url.searchParams.append(k, v)
        const response = await request(url, { method: sample.method as 'GET', headers: sample.headers, dispatcher })
        const body = await response.body.text()
        statuses.set(response.statusCode, (statuses.get(response.statusCode) ?? 0) + 1)
        const problem = checkResponse(sample.method, response.statusCode, String(response.headers['content-type'] ?? ''), body)
        if (problem) problems.push(`${sample.method} ${url.pathname}${url.search.slice(0, 300)} → ${response.statusCode}: ${problem}`)
      }
    }
    await Promise.all(Array.from({ length: CONCURRENCY }, worker))
    await dispatcher.close()
    expect(problems).toEqual([])
    expect(next).toBe(REQUESTS)
    expect(statuses.get(400)).toBeGreaterThan(1000)

    // Still serving correct data.
    await sluice.db.pool.query(`UPDATE items SET title = 'after fuzz' WHERE id = 1`)
    await waitForReplication(sluice)
    const follower = new Follower(() => sluice.shapeUrl(), { table: 'items' })
    await follower.catchUp()
    const expected = await sluice.db.pool.query<{ id: string; title: string }>(`SELECT id::text, title FROM items ORDER BY items.id`)
    expect([...follower.rows.values()].sort((a, b) => Number(a['id']) - Number(b['id']))).toEqual(expected.rows)
  }, 180_000)
})

function checkResponse(method: string, status: number, contentType: string, body: string): string | undefined {
  if (status >= 500) return `server error ${body.slice(0, 200)}`
  if (body.includes('    at ')) return 'stack trace in body'
  if (method === 'HEAD' || status === 204 || status === 304 || status === 202) return body === '' ? undefined : 'unexpected body'
  if (status === 200) return undefined
  if (status === 431 || status === 414) return undefined
  if (!contentType.startsWith('application/json')) return `content-type ${contentType}`
  let parsed: unknown
  try {
    parsed = JSON.parse(body)
  } catch {
    return `not JSON: ${body.slice(0, 100)}`
  }
  if (status === 409) {
    return JSON.stringify(parsed) === '[{"headers":{"control":"must-refetch"}}]' ? undefined : 'bad 409 body'
  }
  if (typeof parsed !== 'object' || parsed === null || typeof (parsed as { message?: unknown }).message !== 'string') {
    return 'error body without message'
  }
  if (status === 400) {
    const errors = (parsed as { errors?: unknown }).errors
    if (typeof errors !== 'object' || errors === null) return '400 without errors'
    for (const reasons of Object.values(errors)) {
      if (!Array.isArray(reasons) || reasons.some((r) => typeof r !== 'string')) return '400 errors not string arrays'
    }
  }
  return undefined
}
