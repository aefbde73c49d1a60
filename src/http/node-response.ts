/**
 * Access to the Node response under Hono (`@hono/node-server` passes it as `c.env.outgoing`), for
 * handlers that stream to it directly (SSE), and the marker that tells the adapter not to answer.
 */
import type { HttpBindings } from '@hono/node-server'
import type { Context } from 'hono'
import type { ServerResponse } from 'node:http'

/** The Node response, or `undefined` when the app runs without a socket (`app.request()`). */
export function nodeResponse(c: Context): ServerResponse | undefined {
  const env = c.env as Partial<HttpBindings> | undefined
  return env?.outgoing instanceof Object && 'writeHead' in env.outgoing ? (env.outgoing as ServerResponse) : undefined
}

/**
 * A fresh "already sent" response per request. The adapter's shared `RESPONSE_ALREADY_SENT`
 * must not be used: middleware appends headers to whatever response a handler returns.
 */
export function responseAlreadySent(): Response {
  return new Response(null, { headers: { [ALREADY_SENT]: 'true' } })
}

/** The header `@hono/node-server` checks (its `X_ALREADY_SENT`, not exported by name). */
const ALREADY_SENT = 'x-hono-already-sent'
