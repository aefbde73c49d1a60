/**
 * The text of a Server-Sent Events stream (PROTOCOL: Server-Sent Events), as pure functions:
 * one `data:` event per log message, the batch's `id:` on its last event, `retry:`, keep-alive
 * comments, and the `<handle>:<offset>` event ids a browser sends back as `Last-Event-ID`.
 * Stored entries are single-line JSON (serialized once, DESIGN: shapes/), so they are written
 * as they are, without re-encoding.
 */
import { SSE } from '../protocol/constants.js'
import { formatOffset, parseOffset, type Offset } from '../protocol/offset.js'
import { parseShapeHandle, type ShapeHandle } from '../shapes/shape-handle.js'

const DATA = Buffer.from('data: ')
const ID = Buffer.from('id: ')
const NEWLINE = Buffer.from('\n')
const END = Buffer.from('\n\n')

export const KEEP_ALIVE = Buffer.from(`${SSE.keepAliveComment}\n\n`)

/** The `retry:` field: how long a browser waits before reconnecting (no event is dispatched). */
export function retryField(retryMs: number): Buffer {
  return Buffer.from(`retry: ${retryMs}\n\n`)
}

/**
 * One event per message, in order; `id` goes on the last one, so a browser's `lastEventId`
 * only advances once it has the whole batch.
 */
export function encodeEvents(messages: readonly Buffer[], id: string | undefined): Buffer {
  const parts: Buffer[] = []
  for (let i = 0; i < messages.length; i++) {
    if (id !== undefined && i === messages.length - 1) parts.push(ID, Buffer.from(id), NEWLINE)
    parts.push(DATA, messages[i]!, END)
  }
  return Buffer.concat(parts)
}

export interface EventId {
  readonly handle: ShapeHandle
  readonly offset: Offset
}

export function formatEventId(handle: ShapeHandle, offset: Offset): string {
  return `${handle}${SSE.eventIdSeparator}${formatOffset(offset)}`
}

/** Parses a `Last-Event-ID`; `undefined` for anything this server did not write. */
export function parseEventId(text: string | undefined): EventId | undefined {
  if (text === undefined) return undefined
  const at = text.indexOf(SSE.eventIdSeparator)
  if (at < 0) return undefined
  const handle = parseShapeHandle(text.slice(0, at))
  const offset = parseOffset(text.slice(at + 1))
  if (!handle || !offset || offset.tx < 0n) return undefined
  return { handle, offset }
}

/** PROTOCOL caching table, live SSE: `public, max-age=<sse timeout − 1>` (seconds, at least 0). */
export function sseCacheControl(timeoutMs: number): string {
  return `public, max-age=${Math.max(0, Math.floor(timeoutMs / 1000) - 1)}`
}
