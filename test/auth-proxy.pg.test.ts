/**
 * The examples/ auth proxy: each user syncs only their own rows, the client cannot widen the
 * shape, and responses say they vary by user.
 */
import { serve } from '@hono/node-server'
import { ShapeStream, type Row } from '@electric-sql/client'
import type { AddressInfo } from 'node:net'
import { createServer, type Server } from 'node:http'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createAuthProxy, demoAuthenticate } from '../examples/auth-proxy/auth-proxy.js'
import { Follower } from './support/follower.js'
import { startTestSluice, waitForReplication, type TestSluice } from './support/sluice.js'
import { TaggedRows } from './support/tagged-rows.js'
import { waitFor } from './support/wait.js'

const SECRET = 'proxy-secret'
let sluice: TestSluice
let proxy: Server
let proxyUrl: string

beforeAll(async () => {
  sluice = await startTestSluice({ secret: SECRET })
  await sluice.db.pool.query(`CREATE TABLE todos (id int PRIMARY KEY, owner_id text NOT NULL, title text, list_id int)`)
  await sluice.db.pool.query(`INSERT INTO todos VALUES (1, 'alice', 'a1', 1), (2, 'bob', 'b1', 2), (3, 'alice', 'a2', 2)`)
  await sluice.db.pool.query(`CREATE TABLE list_members (list_id int, user_id text, PRIMARY KEY (list_id, user_id))`)
  await sluice.db.pool.query(`INSERT INTO list_members VALUES (1, 'bob')`)
  const app = createAuthProxy({ sluiceUrl: sluice.server.url, sluiceSecret: SECRET, authenticate: demoAuthenticate })
  proxy = await new Promise<Server>((resolve) => {
    const server = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }, () => resolve(server as Server)) as Server
  })
  proxyUrl = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}/todos`
})

afterAll(async () => {
  await new Promise((resolve) => proxy?.close(resolve))
  await sluice?.close()
})

class UserFollower extends Follower {
  constructor(token: string) {
    super(() => proxyUrl, { table: 'everything', where: 'true' })
    const original = globalThis.fetch
    this.fetchWith = (input, init) => original(input, { ...init, headers: { authorization: `Bearer ${token}` } })
  }
}

describe('auth proxy example', () => {
  it('gives each user their own rows only, live', async () => {
    const alice = new UserFollower('user-alice')
    const bob = new UserFollower('user-bob')
    await alice.catchUp()
    await bob.catchUp()
    expect(alice.sortedRows().map((r) => r['title'])).toEqual(['a1', 'a2'])
    expect(bob.sortedRows().map((r) => r['title'])).toEqual(['b1'])

    await sluice.db.pool.query(`INSERT INTO todos VALUES (4, 'bob', 'b2')`)
    await sluice.db.pool.query(`UPDATE todos SET owner_id = 'bob' WHERE id = 1`)
    await waitForReplication(sluice)
    await alice.catchUp()
    await bob.catchUp()
    expect(alice.sortedRows().map((r) => r['title'])).toEqual(['a2'])
    expect(bob.sortedRows().map((r) => r['title']).sort()).toEqual(['a1', 'b1', 'b2'])
  })

  it('serves a per-user relational shape: rows move in and out as the user joins and leaves lists', async () => {
    const stop = new AbortController()
    const bob = new ShapeStream({ url: proxyUrl.replace('/todos', '/shared-todos'), headers: { authorization: 'Bearer user-bob' }, signal: stop.signal })
    const rows = new TaggedRows()
    bob.subscribe((messages) => rows.apply(messages))
    const ids = () => [...rows.rows.values()].map((row) => Number(row.value['id'])).sort()
    try {
      await waitFor(() => expect(ids()).toEqual([1]))
      await sluice.db.pool.query(`INSERT INTO list_members VALUES (2, 'bob')`)
      await waitFor(() => expect(ids()).toEqual([1, 2, 3]))
      await sluice.db.pool.query(`DELETE FROM list_members WHERE list_id = 1 AND user_id = 'bob'`)
      await waitFor(() => expect(ids()).toEqual([2, 3]))
    } finally {
      stop.abort()
      bob.unsubscribeAll()
    }
  })

  it('refuses anonymous requests and marks responses as varying by user', async () => {
    expect((await fetch(`${proxyUrl}?offset=-1`)).status).toBe(401)
    const response = await fetch(`${proxyUrl}?offset=-1`, { headers: { authorization: 'Bearer user-alice' } })
    expect(response.status).toBe(200)
    expect(response.headers.get('vary')?.toLowerCase()).toContain('authorization')
    expect(response.headers.get('electric-handle')).toBeTruthy()
  })

  it('forwards expired_handle, cache-buster, every subset__* parameter and POST bodies', async () => {
    const seen: { method: string; url: string; body: string; type: string | undefined }[] = []
    const echo = createServer((req, res) => {
      let body = ''
      req.on('data', (chunk: Buffer) => (body += chunk.toString()))
      req.on('end', () => {
        seen.push({ method: req.method!, url: req.url!, body, type: req.headers['content-type'] })
        res.end('[]')
      })
    })
    await new Promise<void>((resolve) => echo.listen(0, '127.0.0.1', resolve))
    const app = createAuthProxy({ sluiceUrl: `http://127.0.0.1:${(echo.address() as AddressInfo).port}`, sluiceSecret: SECRET, authenticate: demoAuthenticate })
    const auth = { authorization: 'Bearer user-alice' }
    try {
      const query = 'offset=-1&expired_handle=h1&cache-buster=cb&subset__where=id%3E%241&subset__params=%7B%221%22%3A%221%22%7D&subset__params%5B2%5D=x&subset__limit=2&subset__offset=1&subset__order_by=id&subset__where_expr=%7B%7D&table=evil&where=true'
      await app.request(`/todos?${query}`, { headers: auth })
      await app.request('/todos?offset=-1&log=changes_only', { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: '{"where":"id > 1","limit":1,"order_by":"id"}' })
    } finally {
      await new Promise((resolve) => echo.close(resolve))
    }
    const get = new URL(seen[0]!.url, 'http://x').searchParams
    for (const [name, value] of [['expired_handle', 'h1'], ['cache-buster', 'cb'], ['subset__where', 'id>$1'], ['subset__params', '{"1":"1"}'], ['subset__params[2]', 'x'], ['subset__limit', '2'], ['subset__offset', '1'], ['subset__order_by', 'id'], ['subset__where_expr', '{}']]) {
      expect(get.get(name!), name).toBe(value)
    }
    expect(get.get('table')).toBe('todos')
    expect(get.get('where')).toBe('owner_id = $1')
    expect(seen[1]).toMatchObject({ method: 'POST', body: '{"where":"id > 1","limit":1,"order_by":"id"}', type: 'application/json' })
  })

  it('serves subset snapshots through the proxy, GET and POST, within the user\'s rows only', async () => {
    const authed: typeof fetch = (input, init) => fetch(input, { ...init, headers: { ...(init?.headers as Record<string, string>), authorization: 'Bearer user-bob' } })
    for (const method of ['GET', 'POST'] as const) {
      const stream = new ShapeStream<Row>({ url: proxyUrl, log: 'changes_only', fetchClient: authed })
      const { data } = await stream.fetchSnapshot({ where: 'id >= $1', params: { '1': '1' }, orderBy: 'id', limit: 10, method })
      const owners = data.map((m) => m.value['owner_id'])
      expect(owners.length, method).toBeGreaterThan(0)
      expect(new Set(owners), method).toEqual(new Set(['bob']))
      stream.unsubscribeAll()
    }
  })
})
