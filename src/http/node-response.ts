/**
 * Access to the Node response under Hono (`@hono/node-server` passes it as `c.env.outgoing`), for
 * handlers that stream to it directly (SSE), and the marker that tells the adapter not to answer.
 */
import type { HttpBindings } from '@hono/node-server'
import { RESPONSE_ALREADY_SENT } from '@hono/node-server/utils/response'
import type { Context } from 'hono'
import type { ServerResponse } from 'node:http'

/** The Node response, or `undefined` when the app runs without a socket (`app.request()`). */
export function nodeResponse(c: Context): ServerResponse | undefined {
  const env = c.env as Partial<HttpBindings> | undefined
  return env?.outgoing instanceof Object && 'writeHead' in env.outgoing ? (env.outgoing as ServerResponse) : undefined
}

/** The raw request target (`/v1/shape?…`) as the client sent it, when there is a socket. */
export function nodeRequestUrl(c: Context): string | undefined {
  const env = c.env as Partial<HttpBindings> | undefined
  const url = env?.incoming instanceof Object ? env.incoming.url : undefined
  return typeof url === 'string' ? url : undefined
}

/**
 * The adapter's marker for "the handler answered on the Node response itself". It must be the
 * adapter's own instance, made before the adapter replaced the global `Response`: a response
 * made later takes the adapter's fast path, which ignores the marker and writes headers again.
 * Nothing may add headers to it (the shared middleware sets its headers before the handler).
 */
export function responseAlreadySent(): Response {
  return RESPONSE_ALREADY_SENT
}
