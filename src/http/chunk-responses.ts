/**
 * The hot path for complete chunks. A URL that answered a complete chunk answers the same bytes
 * until its shape is gone (docs/PROTOCOL.md: Caching; docs/ARCHITECTURE.md I7), so the whole response is kept
 * by URL in a size-bounded LRU and written straight to the Node response, before Hono sees the
 * request (http/ may bypass Hono's adapter where it costs throughput). Anything this path
 * is unsure of — a wrong secret, a dropped shape, HEAD — falls through to the Hono routes.
 * Like a CDN, it does not ask the catalog again: after a DDL with no write behind it, a client
 * gets its 409 at the first URL not kept here.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { LRUCache } from 'lru-cache'
import type { Logger } from '../log.js'
import type { Metrics } from '../metrics.js'
import { HEADERS, PARAMS } from '../protocol/constants.js'
import type { ActiveShape } from '../shapes/active-shape.js'
import { commonHeaders, matchesEtag } from './common-headers.js'
import { hasSecret } from './secret.js'
import type { ShapeRegistry } from './shape-route.js'

const DEFAULT_MAX_BYTES = 64 * 1024 * 1024
/** Unknown query parameters are ignored, so URLs are many; this keeps the index itself small. */
const MAX_ENTRIES = 10_000

interface ChunkResponse {
  /** The key, kept to count it: a URL may be padded with ignored parameters up to the header limit. */
  readonly url: string
  readonly shape: ActiveShape
  readonly etag: string
  /** Name, value, name, value…: the form `writeHead` takes with the least work per response. */
  readonly headers: readonly string[]
  readonly body: Buffer
}

export interface ChunkResponseDeps {
  readonly manager: Pick<ShapeRegistry, 'byHandle'>
  readonly secret: string | undefined
  readonly metrics: Metrics
  readonly log: Logger
}

export class ChunkResponses {
  readonly #byUrl: LRUCache<string, ChunkResponse>

  constructor(maxBytes = DEFAULT_MAX_BYTES) {
    this.#byUrl = new LRUCache<string, ChunkResponse>({ max: MAX_ENTRIES, maxSize: maxBytes, sizeCalculation: sizeOf })
  }

  /** Keeps the 200 response of a complete chunk, as the route rendered it, for its exact URL. */
  remember(url: string, shape: ActiveShape, headers: Readonly<Record<string, string>>, body: Buffer): void {
    const flat: string[] = []
    for (const [name, value] of Object.entries(headers)) flat.push(name, value)
    this.#byUrl.set(url, { url, shape, etag: headers[HEADERS.etag]!, headers: flat, body })
  }

  /** A request listener that answers from the cache and returns true, or returns false and leaves the request alone. */
  answerer(deps: ChunkResponseDeps): (req: IncomingMessage, res: ServerResponse) => boolean {
    const counted = { 200: deps.metrics.responses.labels({ status: '200' }), 304: deps.metrics.responses.labels({ status: '304' }) }
    return (req, res) => this.#answer(req, res, deps, counted)
  }

  #answer(req: IncomingMessage, res: ServerResponse, deps: ChunkResponseDeps, counted: Record<200 | 304, { inc(): void }>): boolean {
    const url = req.url
    if (req.method !== 'GET' || url === undefined) return false
    const entry = this.#byUrl.get(url)
    if (!entry) return false
    const { shape } = entry
    // byHandle also marks the shape as used, as a request through the route would.
    if (shape.dropped || deps.manager.byHandle(shape.stored.handle) !== shape) {
      this.#byUrl.delete(url)
      return false
    }
    if (deps.secret !== undefined && !hasSecret(deps.secret, querySecret(url), req.headers.authorization)) return false

    const started = performance.now()
    const headers = entry.headers.slice()
    const common = commonHeaders(header(req, 'x-request-id'), header(req, 'origin'))
    for (const name in common) headers.push(name, common[name]!)
    const notModified = matchesEtag(header(req, HEADERS.ifNoneMatch), entry.etag)
    if (notModified) {
      res.writeHead(304, headers).end()
    } else {
      headers.push('content-length', String(entry.body.length))
      res.writeHead(200, headers).end(entry.body)
    }
    const status = notModified ? 304 : 200
    counted[status].inc()
    deps.metrics.cachedChunkResponses.inc()
    if (deps.log.isLevelEnabled('debug')) {
      deps.log.debug({ requestId: common['x-request-id'], method: 'GET', path: url.split('?')[0], status, ms: Math.round(performance.now() - started), cached: true }, 'request')
    }
    return true
  }
}

/** Bytes an entry holds: its URL, headers and body, not only the body. */
function sizeOf(entry: ChunkResponse): number {
  let bytes = entry.url.length + entry.body.length
  for (const text of entry.headers) bytes += text.length
  return bytes
}

function header(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name]
  return Array.isArray(value) ? value[0] : value
}

function querySecret(url: string): string | undefined {
  const query = url.indexOf('?')
  return query < 0 ? undefined : (new URLSearchParams(url.slice(query + 1)).get(PARAMS.secret) ?? undefined)
}
