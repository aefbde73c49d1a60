/**
 * The text of a Server-Sent Events stream (docs/PROTOCOL.md: Server-Sent Events), as pure functions:
 * one `data:` event per log message, the batch's `id:` on its last event, `retry:`, keep-alive
 * comments, and the `<handle>:<offset>` event ids a browser sends back as `Last-Event-ID`.
 * Stored entries are single-line JSON (serialized once, docs/ARCHITECTURE.md: Data flow), so they are written
 * as they are, without re-encoding.
 */
import { OFFSET_NOW, SSE } from '../protocol/constants.js'
import { BEFORE_ALL, compareOffsets, formatOffset, parseOffset, type Offset } from '../protocol/offset.js'
import { parseShapeHandle, type ShapeHandle } from '../shapes/shape-handle.js'

const DATA = Buffer.from('data: ')
const ID = Buffer.from('id: ')
const NEWLINE = Buffer.from('\n')
const END = Buffer.from('\n\n')

export const KEEP_ALIVE = Buffer.from(`${SSE.keepAliveComment}\n\n`)

/**
 * How a stream is written. `electric`: as Electric writes it for `@electric-sql/client`, `data:`
 * events only and nothing at the head until a change. `eventSource` [sluice]: a plain browser
 * `EventSource` also gets `retry:`, an `id:` per batch to resume from (`Last-Event-ID`), and an
 * up-to-date at once, so that a page knows it is live.
 */
export const SSE_FRAMING = { electric: 'electric', eventSource: 'eventSource' } as const
export type SseFraming = (typeof SSE_FRAMING)[keyof typeof SSE_FRAMING]

/**
 * The client sends `cursor` on every live request (even empty, before its first live answer) and
 * goes live over SSE only from a `handle` and offset it reached; a page's EventSource opens at
 * `-1` or `now`, resumes with `Last-Event-ID`, and has no cursor to send.
 */
export function sseFramingOf(offset: Offset | typeof OFFSET_NOW, cursor: string | undefined, lastEventId: string | undefined): SseFraming {
  const fromStart = offset === OFFSET_NOW || compareOffsets(offset, BEFORE_ALL) === 0
  return cursor !== undefined && lastEventId === undefined && !fromStart ? SSE_FRAMING.electric : SSE_FRAMING.eventSource
}

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

/** docs/PROTOCOL.md caching table, live SSE: `public, max-age=<sse timeout − 1>` (seconds, at least 0). */
export function sseCacheControl(timeoutMs: number): string {
  return `public, max-age=${Math.max(0, Math.floor(timeoutMs / 1000) - 1)}`
}
