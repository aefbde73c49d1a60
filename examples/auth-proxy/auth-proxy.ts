/**
 * An auth proxy in front of Sluice: the pattern for serving per-user shapes to browsers.
 * The browser never chooses `table` or `where`: the proxy authenticates the user, fixes the
 * shape from the user's identity, forwards only the protocol's own parameters, adds the
 * Sluice secret, and streams Sluice's answer back unchanged (headers included).
 *
 * Run: SLUICE_URL=http://127.0.0.1:3000 SLUICE_SECRET=... node --import tsx examples/auth-proxy/auth-proxy.ts
 */
import { serve } from '@hono/node-server'
import { Hono } from 'hono'

/**
 * Parameters a client may set: everything else is decided here. `expired_handle` and
 * `cache-buster` keep the client out of stale cached answers; `subset__*` (and a POST body)
 * ask for a subset snapshot, which Sluice always intersects with the shape fixed below, so a
 * subset can narrow what a user sees but never widen it.
 */
const FORWARDED_PARAMS = ['offset', 'handle', 'live', 'live_sse', 'experimental_live_sse', 'cursor', 'log', 'expired_handle', 'cache-buster']
const FORWARDED_PREFIX = 'subset__'
const FORWARDED_HEADERS = ['if-none-match', 'last-event-id', 'accept', 'content-type']

export interface User {
  readonly id: string
}

export interface AuthProxyOptions {
  /** Base URL of Sluice, e.g. http://127.0.0.1:3000 */
  readonly sluiceUrl: string
  readonly sluiceSecret: string | undefined
  /** Your authentication: a session cookie, a JWT... `undefined` means 401. */
  readonly authenticate: (authorization: string | undefined) => User | undefined
}

/** The shape each route serves, fixed from the user's identity. */
const ROUTES: Readonly<Record<string, { readonly table: string; readonly where: string }>> = {
  // The user's own todos.
  '/todos': { table: 'todos', where: 'owner_id = $1' },
  // A relational shape: the todos of every list the user is a member of. Rows move in and out
  // as memberships change; SLUICE_TABLES must list list_members too.
  '/shared-todos': { table: 'todos', where: 'list_id IN (SELECT list_id FROM list_members WHERE user_id = $1)' },
}

export function createAuthProxy(options: AuthProxyOptions): Hono {
  const app = new Hono()
  app.on(['GET', 'POST'], Object.keys(ROUTES), async (c) => {
    const user = options.authenticate(c.req.header('authorization'))
    if (!user) return c.json({ message: 'Sign in first.' }, 401)

    const shape = ROUTES[c.req.path]!
    const upstream = new URL('/v1/shape', options.sluiceUrl)
    upstream.searchParams.set('table', shape.table)
    upstream.searchParams.set('where', shape.where)
    upstream.searchParams.set('params[1]', user.id)
    for (const [name, value] of new URL(c.req.url).searchParams) {
      if (FORWARDED_PARAMS.includes(name) || name.startsWith(FORWARDED_PREFIX)) upstream.searchParams.append(name, value)
    }
    const headers = new Headers()
    for (const name of FORWARDED_HEADERS) {
      const value = c.req.header(name)
      if (value !== undefined) headers.set(name, value)
    }
    if (options.sluiceSecret) headers.set('authorization', `Bearer ${options.sluiceSecret}`)

    const body = c.req.method === 'POST' ? { body: await c.req.arrayBuffer() } : {}
    const response = await fetch(upstream, { method: c.req.method, headers, ...body, signal: c.req.raw.signal })
    const out = new Headers(response.headers)
    // The same URL means different rows for different users: a shared cache must key on the
    // user too. Vary covers caches that honour it; the README explains the rest.
    out.append('vary', 'authorization')
    out.delete('content-length')
    out.delete('content-encoding')
    return new Response(response.body, { status: response.status, headers: out })
  })
  return app
}

/** Demo authentication: `Authorization: Bearer user-<id>`. Replace with your own. */
export function demoAuthenticate(authorization: string | undefined): User | undefined {
  const match = /^Bearer user-([A-Za-z0-9_-]{1,64})$/.exec(authorization ?? '')
  return match ? { id: match[1]! } : undefined
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const app = createAuthProxy({
    sluiceUrl: process.env['SLUICE_URL'] ?? 'http://127.0.0.1:3000',
    sluiceSecret: process.env['SLUICE_SECRET'],
    authenticate: demoAuthenticate,
  })
  const port = Number(process.env['PORT'] ?? 3001)
  serve({ fetch: app.fetch, port }, () => process.stdout.write(`auth proxy on http://127.0.0.1:${port}/todos and /shared-todos\n`))
}
