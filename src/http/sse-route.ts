/**
 * GET /v1/shape with `live=true&live_sse=true` (docs/PROTOCOL.md: Server-Sent Events): resolves the
 * shape like any request (so a bad request or a stale `handle` still gets its 400/409), then
 * writes the event stream to the Node response directly and hands it to the `SseHub`.
 * `@electric-sql/client` gets Electric's framing (`sse-events.ts`: `SSE_FRAMING`).
 *
 * [sluice] For a plain browser `EventSource`:
 * - `offset=-1` (or `now`) is allowed in SSE mode: snapshot (or nothing), then live, one connection;
 * - `Last-Event-ID: <handle>:<offset>` (the `id:` of the last batch the browser got) replaces
 *   `handle` and `offset`, so a reconnect continues exactly after that batch;
 * - when that handle is gone, the stream opens with one must-refetch event
 *   (`data: {"headers":{"control":"must-refetch"}}`, no `id:`) and then carries the current
 *   shape from its start, with ids of the new handle: the page drops its rows and rebuilds.
 */
import type { ServerResponse } from 'node:http'
import { MustRefetchError } from '../errors.js'
import { electricSchema } from '../protocol/electric-schema.js'
import { CONTROL, HEADERS, OFFSET_NOW, SSE } from '../protocol/constants.js'
import { BEFORE_ALL, compareOffsets, formatOffset, type Offset } from '../protocol/offset.js'
import type { ActiveShape } from '../shapes/active-shape.js'
import { waitForSnapshot } from '../shapes/shape-lifecycle.js'
import { nextCursor } from './cursor.js'
import { headOf } from './log-reader.js'
import type { ShapeRequest } from './shape-request.js'
import { resolveShape, type ShapeRouteDeps } from './shape-route.js'
import { encodeEvents, parseEventId, retryField, SSE_FRAMING, sseCacheControl, sseFramingOf } from './sse-events.js'
import type { SseHub } from './sse-hub.js'

export interface SseRequest {
  readonly res: ServerResponse
  /** The `Last-Event-ID` request header, when the browser resumes. */
  readonly lastEventId: string | undefined
  /** The headers every response carries (`common-headers.ts`): request id and CORS. */
  readonly common: Readonly<Record<string, string>>
  /** Runs once when the stream is over (or was never opened). */
  readonly onClose?: () => void
}

const MUST_REFETCH_EVENT = encodeEvents([Buffer.from(JSON.stringify({ headers: { control: CONTROL.mustRefetch } }))], undefined)

export async function streamShape(deps: ShapeRouteDeps, hub: SseHub, request: ShapeRequest, http: SseRequest): Promise<void> {
  const { res } = http
  let opened = false
  try {
    const { shape, start, refetch } = await resolveStart(deps, request, http)
    if (res.destroyed) return
    const headers: Record<string, string> = {
      'content-type': SSE.contentType,
      [HEADERS.cacheControl]: sseCacheControl(hub.options.timeoutMs),
      [HEADERS.accelBuffering]: 'no',
      [HEADERS.handle]: shape.stored.handle,
      [HEADERS.offset]: formatOffset(start),
      [HEADERS.cursor]: nextCursor((deps.now ?? Date.now)(), request.cursor),
      // The same URL streams differently after a Last-Event-ID.
      ...http.common,
      vary: http.common['vary'] ? `${http.common['vary']}, ${HEADERS.lastEventId}` : HEADERS.lastEventId,
    }
    if (compareOffsets(start, BEFORE_ALL) === 0) headers[HEADERS.schema] = JSON.stringify(electricSchema(shape.table))
    // The body runs until the connection closes, without chunked framing: every batch is then
    // the same bytes for every connection, written straight to the socket (`SseConnection`).
    // The stream is long-lived and EventSource reconnects anyway, so keep-alive buys nothing.
    headers['connection'] = 'close'
    res.removeHeader('transfer-encoding')
    res.writeHead(200, headers)
    const framing = sseFramingOf(request.offset, request.cursor, http.lastEventId)
    if (framing === SSE_FRAMING.electric) res.flushHeaders()
    else res.write(refetch ? Buffer.concat([retryField(hub.options.retryMs), MUST_REFETCH_EVENT]) : retryField(hub.options.retryMs))
    opened = true
    hub.open(shape, start, framing, res, http.onClose)
  } finally {
    if (!opened) http.onClose?.()
  }
}

interface Start {
  readonly shape: ActiveShape
  readonly start: Offset
  readonly refetch: boolean
}

async function resolveStart(deps: ShapeRouteDeps, request: ShapeRequest, http: SseRequest): Promise<Start> {
  if (http.lastEventId !== undefined) {
    const resume = parseEventId(http.lastEventId)
    if (resume) {
      try {
        const shape = await resolveShape(deps, { ...request, handle: resume.handle, offset: resume.offset })
        return { shape, start: resume.offset, refetch: false }
      } catch (error) {
        if (!(error instanceof MustRefetchError)) throw error
      }
    }
    // The browser's position belongs to a shape that is gone (or to no shape of ours).
    const shape = await resolveShape(deps, { ...request, handle: undefined, offset: BEFORE_ALL })
    return { shape, start: BEFORE_ALL, refetch: true }
  }
  const shape = await resolveShape(deps, request)
  if (request.offset !== OFFSET_NOW) return { shape, start: request.offset, refetch: false }
  const aborted = new AbortController()
  const onClose = () => aborted.abort()
  http.res.once('close', onClose)
  try {
    await waitForSnapshot(deps.notifier, shape, aborted.signal)
  } finally {
    http.res.off('close', onClose)
  }
  return { shape, start: headOf(deps.store, shape), refetch: false }
}
