/**
 * The HTTP API (docs/PROTOCOL.md: Endpoints) as a Hono app: routing, CORS, auth and error mapping.
 * The shape logic lives in `shape-route.ts`; this file only wires requests to it.
 */
import { Hono, type Context } from 'hono'
import type pg from 'pg'
import { demoRoutes } from '../demo-routes.js'
import { InvalidRequestError, MethodNotAllowedError, NotFoundError, UnauthorizedError } from '../errors.js'
import type { Logger } from '../log.js'
import type { TableName } from '../pg/table-name.js'
import { HEADERS, PARAMS, SUBSET_BODY } from '../protocol/constants.js'
import { definitionKey } from '../shapes/shape-definition.js'
import { parseShapeHandle } from '../shapes/shape-handle.js'
import type { Metrics } from '../metrics.js'
import { ADMISSION, type Admission } from './admission.js'
import { requireAllowedSubqueryTables, requireAllowedTable } from './allow-list.js'
import type { LiveSlots } from './live-slots.js'
import type { ChunkResponses } from './chunk-responses.js'
import { commonHeaders } from './common-headers.js'
import { UNCACHEABLE } from './cache-headers.js'
import { errorResponse } from './error-response.js'
import { HEALTH_RETRY_AFTER_SECONDS } from './retry-after.js'
import { resolveShape, serveShape, type ShapeRegistry } from './shape-route.js'
import { LongPollHub } from './long-poll-hub.js'
import type { ActiveShape } from '../shapes/active-shape.js'
import { nodeRequestUrl, nodeResponse, responseAlreadySent } from './node-response.js'
import { SseHub } from './sse-hub.js'
import { streamShape } from './sse-route.js'
import { hasSecret } from './secret.js'
import { parseShapeRequest, type ShapeRequest } from './shape-request.js'
import { readCappedBody } from './request-body.js'
import { MAX_SUBSET_BODY_BYTES, subsetFromBody, subsetFromQuery } from './subset-request.js'
import { serveSubset, type SubsetRouteDeps } from './subset-route.js'
import type { SubsetParams } from '../shapes/subset/compile-subset.js'

/** `waiting`: replication broke (database restarted or unreachable) and is reconnecting. */
export const HEALTH = { active: 'active', starting: 'starting', waiting: 'waiting' } as const
export type Health = (typeof HEALTH)[keyof typeof HEALTH]

export interface AppDeps extends SubsetRouteDeps {
  readonly manager: ShapeRegistry
  readonly secret: string | undefined
  readonly allowShapeDeletion: boolean
  readonly allowedTables: readonly TableName[] | undefined
  readonly liveSlots: LiveSlots
  /** Budgets of requests in flight for new and for existing shapes (`admission.ts`). */
  readonly admission: Admission
  /** Complete chunks answered by URL ahead of these routes (`chunk-responses.ts`). */
  readonly chunkResponses?: ChunkResponses
  readonly metrics: Metrics
  /** The OpenAPI document served at /openapi.yaml. */
  readonly openapi: string
  /** Aborted when the server shuts down: waiting live requests then answer at once. */
  readonly shutdown: AbortSignal
  /** When set, the demo page at `/` and its write endpoint, on this pool (`demo-routes.ts`). */
  readonly demo?: pg.Pool | undefined
  readonly health: () => Health
  readonly log: Logger
}

const SHAPE_PATHS = ['/v1/shape', '/shape'] as const

/** `common`: the headers every response carries, for handlers that write to the socket themselves. */
type AppEnv = { Variables: { common: Record<string, string> } }

export function createApp(deps: AppDeps): Hono<AppEnv> {
  const app = new Hono<AppEnv>()
  const sse = new SseHub(deps)
  const longPolls = new LongPollHub(deps)

  app.use('*', async (c, next) => {
    const started = performance.now()
    const common = commonHeaders(c.req.header('x-request-id'), c.req.header('origin'))
    // Set before the handler answers: a header added to a finished response makes the adapter
    // rebuild that response as a web stream, which costs more than the rest of a cached read.
    for (const name in common) c.header(name, common[name])
    c.set('common', common)
    await next()
    deps.metrics.responses.inc({ status: String(c.res.status) })
    deps.log.debug(
      { requestId: common['x-request-id'], method: c.req.method, path: c.req.path, status: c.res.status, ms: Math.round(performance.now() - started) },
      'request',
    )
  })

  for (const path of SHAPE_PATHS) {
    app.options(path, (c) => {
      c.header('access-control-allow-methods', 'GET, HEAD, POST, DELETE, OPTIONS')
      c.header('access-control-allow-headers', c.req.header('access-control-request-headers') ?? 'authorization, content-type, if-none-match')
      c.header('access-control-max-age', '86400')
      return c.body(null, 204)
    })

    app.get(path, (c) =>
      guard(c, deps, async () => {
        const request = authorizedRequest(c, deps)
        const subset = subsetFromQuery(new URL(c.req.url).searchParams)
        if (subset) {
          // A HEAD answer drops the body unread, which would leave the query holding its connection.
          if (c.req.method !== 'GET') throw InvalidRequestError.of(PARAMS.subsetWhere, 'subset snapshots are answered to GET and POST only')
          return await admitted(deps, request, () => subsetResponse(c, deps, request, subset))
        }
        const outgoing = request.liveSse && c.req.method === 'GET' ? nodeResponse(c) : undefined
        if (outgoing) {
          const onClose = deps.liveSlots.acquire()
          const lastEventId = c.req.header(HEADERS.lastEventId)
          await streamShape(deps, sse, request, { res: outgoing, lastEventId, common: c.get('common'), onClose })
          return responseAlreadySent()
        }
        const release = request.live ? deps.liveSlots.acquire() : admit(deps, request)
        let parked = false
        try {
          const ifNoneMatch = c.req.header(HEADERS.ifNoneMatch)
          const waiting = request.live && c.req.method === 'GET' ? nodeResponse(c) : undefined
          let shape: ActiveShape | undefined
          if (waiting) {
            // A request that waits at the head is held by the hub, not by this handler (I23).
            shape = await resolveShape(deps, request)
            parked = longPolls.park(shape, request, ifNoneMatch, c.get('common'), waiting, release!)
            if (parked) return responseAlreadySent()
          }
          // Building the Request for its abort signal costs; only waiting requests need it.
          const signal = request.live ? AbortSignal.any([c.req.raw.signal, deps.shutdown]) : deps.shutdown
          const response = await serveShape(deps, request, ifNoneMatch, signal, shape)
          for (const [name, value] of Object.entries(response.headers)) c.header(name, value)
          if (response.status === 304) return c.body(null, 304)
          const url = nodeRequestUrl(c)
          if (response.immutableOf && url !== undefined) deps.chunkResponses?.remember(url, response.immutableOf, response.headers, response.body)
          // A view of the Buffer, not a copy of it.
          const { buffer, byteOffset, byteLength } = response.body
          return c.body(new Uint8Array(buffer as ArrayBuffer, byteOffset, byteLength), 200)
        } finally {
          if (!parked) release?.()
        }
      }),
    )

    // A subset snapshot with its parameters in the body (PROTOCOL: Subset snapshots).
    app.post(path, (c) =>
      guard(c, deps, async () => {
        const request = authorizedRequest(c, deps)
        return await admitted(deps, request, async () => {
          const text = await readCappedBody(c.req.raw, MAX_SUBSET_BODY_BYTES)
          let body: unknown
          try {
            body = JSON.parse(text)
          } catch {
            throw InvalidRequestError.of(SUBSET_BODY.nested, 'the request body must be JSON: {"where": ..., "params": ..., "limit": ..., "offset": ..., "order_by": ...}')
          }
          return await subsetResponse(c, deps, request, subsetFromBody(body))
        })
      }),
    )

    app.delete(path, (c) =>
      guard(c, deps, async () => {
        if (!deps.allowShapeDeletion) {
          throw new MethodNotAllowedError('Shape deletion is disabled; set SLUICE_ALLOW_SHAPE_DELETION=true to enable it.')
        }
        authorize(c, deps.secret)
        const shape = findShapeToDelete(c, deps)
        if (shape) requireAllowedTable(deps.allowedTables, shape.stored.definition.table)
        if (!shape) throw new NotFoundError('No such shape.')
        await deps.manager.drop(shape, 'deleted through the API')
        uncacheable(c)
        return c.body(null, 202)
      }),
    )
  }

  app.get('/metrics', async (c) => {
    c.header('content-type', deps.metrics.registry.contentType)
    uncacheable(c)
    return c.body(await deps.metrics.registry.metrics())
  })

  app.get('/openapi.yaml', (c) => {
    c.header('content-type', 'application/yaml')
    return c.body(deps.openapi)
  })

  app.get('/v1/health', (c) => {
    const status = deps.health()
    uncacheable(c)
    if (status === HEALTH.waiting) {
      c.header(HEADERS.retryAfter, String(HEALTH_RETRY_AFTER_SECONDS))
      return c.json({ status }, 503)
    }
    return c.json({ status }, status === HEALTH.active ? 200 : 202)
  })

  if (deps.demo) app.route('/', demoRoutes(deps.demo, (c) => authorize(c, deps.secret)))

  app.notFound((c) => send(c, new NotFoundError(`Not found: ${c.req.method} ${new URL(c.req.url).pathname}`), deps.log))

  app.onError((error, c) => send(c, error, deps.log))
  return app
}

/**
 * A place in the budget of requests for new shapes, or for existing ones (docs/ARCHITECTURE.md
 * I22): a request counts as new when no shape of its definition exists yet, whatever its offset.
 */
/** The shape request of an authorized client, naming only tables it may read (the table and those of its subqueries). */
function authorizedRequest(c: Context, deps: AppDeps): ShapeRequest {
  authorize(c, deps.secret)
  // Every parameter in one pass: hono looks each one up in the URL, and one absent from an encoded
  // URL (most are) cost a pass over all of them (4.6 KB and 17 µs a new shape).
  const query = c.req.query()
  const request = parseShapeRequest((name) => query[name])
  requireAllowedTable(deps.allowedTables, request.definition.table)
  requireAllowedSubqueryTables(deps.allowedTables, request.whereSource)
  return request
}

function admit(deps: AppDeps, request: ShapeRequest): () => void {
  return deps.admission.admit(deps.manager.byDefinition(request.definition) ? ADMISSION.existing : ADMISSION.initial)
}

async function admitted(deps: AppDeps, request: ShapeRequest, handler: () => Promise<Response>): Promise<Response> {
  const release = admit(deps, request)
  try {
    return await handler()
  } finally {
    release()
  }
}

async function subsetResponse(c: Context, deps: AppDeps, request: ShapeRequest, subset: SubsetParams): Promise<Response> {
  const response = await serveSubset(deps, request, subset, request.queryableColumns, AbortSignal.any([c.req.raw.signal, deps.shutdown]))
  // The shared middleware set CORS and the request id on the context: carry them over.
  for (const [name, value] of Object.entries(c.get('common') as Record<string, string>)) response.headers.set(name, value)
  return response
}

async function guard(c: Context, deps: AppDeps, handler: () => Promise<Response>): Promise<Response> {
  try {
    return await handler()
  } catch (error) {
    return send(c, error, deps.log)
  }
}

function send(c: Context, error: unknown, log: Logger): Response {
  const response = errorResponse(error, log)
  for (const [name, value] of Object.entries(response.headers)) c.header(name, value)
  return c.body(response.body, response.status as 400)
}

function uncacheable(c: Context): void {
  for (const [name, value] of Object.entries(UNCACHEABLE)) c.header(name, value)
}

function findShapeToDelete(c: Context, deps: AppDeps) {
  const handleText = c.req.query(PARAMS.handle)
  if (handleText !== undefined) {
    const handle = parseShapeHandle(handleText)
    if (!handle) throw InvalidRequestError.of(PARAMS.handle, 'is not a shape handle')
    const shape = deps.manager.byHandle(handle)
    if (shape && c.req.query(PARAMS.table) !== undefined) {
      const request = parseShapeRequest((name) => (name === PARAMS.offset ? '-1' : c.req.query(name)))
      if (definitionKey(request.definition) !== shape.stored.definitionKey) return undefined
    }
    return shape
  }
  const request = parseShapeRequest((name) => (name === PARAMS.offset ? '-1' : c.req.query(name)))
  return deps.manager.byDefinition(request.definition)
}

function authorize(c: Context, secret: string | undefined): void {
  if (!hasSecret(secret, c.req.query(PARAMS.secret), c.req.header('authorization'))) {
    throw new UnauthorizedError('Missing or wrong secret: pass it as ?secret= or Authorization: Bearer.')
  }
}
