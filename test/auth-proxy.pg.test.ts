/**
 * The examples/ auth proxy: each user syncs only their own rows, the client cannot widen the
 * shape, and responses say they vary by user.
 */
import { serve } from '@hono/node-server'
import type { AddressInfo } from 'node:net'
import type { Server } from 'node:http'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createAuthProxy, demoAuthenticate } from '../examples/auth-proxy/auth-proxy.js'
import { Follower } from './support/follower.js'
import { startTestSluice, waitForReplication, type TestSluice } from './support/sluice.js'

const SECRET = 'proxy-secret'
let sluice: TestSluice
let proxy: Server
let proxyUrl: string

beforeAll(async () => {
  sluice = await startTestSluice({ secret: SECRET })
  await sluice.db.pool.query(`CREATE TABLE todos (id int PRIMARY KEY, owner_id text NOT NULL, title text)`)
  await sluice.db.pool.query(`INSERT INTO todos VALUES (1, 'alice', 'a1'), (2, 'bob', 'b1'), (3, 'alice', 'a2')`)
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

  it('refuses anonymous requests and marks responses as varying by user', async () => {
    expect((await fetch(`${proxyUrl}?offset=-1`)).status).toBe(401)
    const response = await fetch(`${proxyUrl}?offset=-1`, { headers: { authorization: 'Bearer user-alice' } })
    expect(response.status).toBe(200)
    expect(response.headers.get('vary')?.toLowerCase()).toContain('authorization')
    expect(response.headers.get('electric-handle')).toBeTruthy()
  })
})
