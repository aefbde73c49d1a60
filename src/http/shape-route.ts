/**
 * GET /v1/shape: resolves the request to a shape (creating it, or answering 409 when the
 * client's handle is gone), reads the log slice and sets the protocol's headers.
 */
import { MustRefetchError, UnavailableError } from '../errors.js'
import type { TableInfo } from '../pg/introspect.js'
import type { TableCatalog } from '../pg/table-catalog.js'
import { electricSchema } from '../protocol/electric-schema.js'
import { HEADERS, OFFSET_NOW } from '../protocol/constants.js'
import { BEFORE_ALL, compareOffsets, formatOffset, type Offset } from '../protocol/offset.js'
import type { ActiveShape } from '../shapes/active-shape.js'
import type { ShapeDefinition } from '../shapes/shape-definition.js'
import { lookUpShape, LOOKUP, waitForSnapshot } from '../shapes/shape-lifecycle.js'
import type { ShapeManager } from '../shapes/shape-manager.js'
import { compileParsedWhere, tablesOfParsedWhere, tablesOfWhere, type CompiledWhere, type SubqueryTables } from '../shapes/where/compile-where.js'
import { CACHE_CONTROL, nonLiveCacheControl, type CachePolicy } from './cache-headers.js'
import { matchesEtag } from './common-headers.js'
import { nextCursor } from './cursor.js'
import { lastSeenLsn, processedLsn } from './last-seen-lsn.js'
import { headOf, readLog, upToDateMessage, type LogSlice } from './log-reader.js'
import type { ShapeRequest } from './shape-request.js'
import type { FOREIGN_HANDLE, ShapeHandle } from '../shapes/shape-handle.js'
import type { ShapeLogReader, ShapeLogWaiter } from './shape-log.js'
import { subqueryTables } from './subquery-tables.js'
import type { SseOptions } from './sse-hub.js'

/** What a route asks of the shape registry (`shapes/ShapeManager`). */
export type ShapeRegistry = Pick<ShapeManager, 'byHandle' | 'byDefinition' | 'getOrCreate' | 'mustRefetch' | 'drop'>

/** What a route asks of the table catalog (`pg/TableCatalog`). */
export type TableLookup = Pick<TableCatalog, 'get' | 'find' | 'forget'>

export interface ShapeRouteDeps {
  readonly store: ShapeLogReader
  readonly notifier: ShapeLogWaiter
  readonly manager: ShapeRegistry
  readonly tables: TableLookup
  readonly longPollMs: number
  readonly cache: CachePolicy
  /** False while replication is not streaming: new shapes cannot be made consistent then. */
  readonly canCreateShapes: () => boolean
  /** Server-Sent Events timings (defaults: `SSE_DEFAULTS`). */
  readonly sse?: SseOptions
  readonly now?: () => number
}

export interface ShapeResponse {
  readonly status: 200 | 304
  readonly headers: Record<string, string>
  readonly body: Buffer
  /** Set when this is a complete chunk addressed by handle: the same URL answers the same bytes. */
  readonly immutableOf?: ActiveShape
}

/** `resolved`: the shape when the caller already resolved the request (`resolveShape`). */
export async function serveShape(
  deps: ShapeRouteDeps,
  request: ShapeRequest,
  ifNoneMatch: string | undefined,
  signal?: AbortSignal,
  resolved?: ActiveShape,
): Promise<ShapeResponse> {
  try {
    return await serveResolved(deps, request, resolved ?? (await resolveShape(deps, request)), ifNoneMatch, signal)
  } catch (error) {
    // A shape dropped under a waiting request: point the client at its replacement.
    if (error instanceof MustRefetchError && error.handle === undefined) {
      const { table, tables, where } = await tableFor(deps, request)
      requireReplication(deps)
      return deps.manager.mustRefetch(request.definition, table, error.message, { tables, where })
    }
    throw error
  }
}

async function serveResolved(
  deps: ShapeRouteDeps,
  request: ShapeRequest,
  shape: ActiveShape,
  ifNoneMatch: string | undefined,
  signal: AbortSignal | undefined,
): Promise<ShapeResponse> {
  let slice: LogSlice
  let requested: Offset
  if (request.offset === OFFSET_NOW) {
    await waitForSnapshot(deps.notifier, shape, signal)
    const processed = processedLsn(deps.store.committedLsn, shape.heldFrom)
    const head = headOf(deps.store, shape)
    requested = head
    slice = { parts: [], end: head, hasEntries: false, complete: false, upToDate: { lastSeenLsn: lastSeenLsn(head, processed) } }
  } else {
    requested = request.offset
    slice = await readLog(deps, shape, request.offset, {
      live: request.live,
      timeoutMs: deps.longPollMs,
      ...(signal ? { signal } : {}),
    })
  }

  return respond(deps, request, shape, requested, slice, ifNoneMatch)
}

/** What of a request its answer depends on, once its slice is read (docs/PROTOCOL.md: Response headers). */
export interface AnsweredRequest {
  readonly offset: Offset | typeof OFFSET_NOW
  readonly live: boolean
  readonly cursor: string | undefined
  readonly handle: RequestedHandle
}

/** The `handle` a request named: ours, one we cannot have issued, or none. */
export type RequestedHandle = ShapeHandle | typeof FOREIGN_HANDLE | undefined

/**
 * The response for `slice`, read after `requested` (the request's offset, or the head for
 * `offset=now`). Synchronous: a parked long-poll (`long-poll-hub.ts`) answers with it too.
 */
export function respond(
  deps: Pick<ShapeRouteDeps, 'cache' | 'now'>,
  request: AnsweredRequest,
  shape: ActiveShape,
  requested: Offset,
  slice: LogSlice,
  ifNoneMatch: string | undefined,
): ShapeResponse {
  const fromStart = request.offset !== OFFSET_NOW && compareOffsets(request.offset, BEFORE_ALL) === 0
  const handle = shape.stored.handle
  const requestedText = request.offset === OFFSET_NOW ? OFFSET_NOW : formatOffset(requested)
  const emptyLive = request.live && slice.parts.length === 0
  // An empty live answer must never revalidate into an older one: give it a unique tag.
  const etag = `"${handle}:${requestedText}:${formatOffset(slice.end)}${emptyLive ? `:${(deps.now ?? Date.now)()}` : ''}"`
  const headers: Record<string, string> = {
    [HEADERS.handle]: handle,
    [HEADERS.offset]: formatOffset(slice.end),
    [HEADERS.etag]: etag,
    [HEADERS.hasData]: String(slice.parts.length > 0),
    'content-type': 'application/json',
  }
  if (request.live) {
    headers[HEADERS.cursor] = nextCursor((deps.now ?? Date.now)(), request.cursor)
    headers[HEADERS.cacheControl] = CACHE_CONTROL.live
  } else {
    headers[HEADERS.schema] = schemaHeaderOf(shape)
    headers[HEADERS.cacheControl] = fromStart ? CACHE_CONTROL.initial : nonLiveCacheControl(deps.cache)
  }
  if (request.offset === OFFSET_NOW) headers[HEADERS.cacheControl] = CACHE_CONTROL.live
  if (slice.upToDate) headers[HEADERS.upToDate] = ''

  if (matchesEtag(ifNoneMatch, etag)) return { status: 304, headers, body: Buffer.alloc(0) }
  const body = renderBody(slice.parts, slice.upToDate ? upToDateMessage(slice.upToDate.lastSeenLsn) : undefined)
  // Only handle-addressed URLs: `offset=-1` must keep resolving to the definition's current shape.
  const immutable = slice.complete && !request.live && !fromStart && request.handle !== undefined
  return { status: 200, headers, body, ...(immutable ? { immutableOf: shape } : {}) }
}

/** By table as bound: the shapes of a table that select every column share the catalog's, and so one header. */
const schemaHeaders = new WeakMap<TableInfo, string>()

function schemaHeaderOf(shape: ActiveShape): string {
  let header = schemaHeaders.get(shape.table)
  if (header === undefined) schemaHeaders.set(shape.table, (header = JSON.stringify(electricSchema(shape.table))))
  return header
}

/** The 409 for a shape dropped under a waiting request: the client is pointed at its replacement. */
export async function replaceDropped(deps: ShapeRouteDeps, definition: ShapeDefinition, why: string): Promise<never> {
  const table = await deps.tables.get(definition.table)
  // The stored where is canonical, its parameters inlined.
  const tables = definition.where === undefined ? new Map() : await subqueryTables(deps.tables, tablesOfWhere(definition.where))
  requireReplication(deps)
  return deps.manager.mustRefetch(definition, table, why, { tables })
}

export async function resolveShape(deps: ShapeRouteDeps, request: ShapeRequest): Promise<ActiveShape> {
  const found = await lookUpShape(deps, request.definition, request.handle)
  if (found.kind === LOOKUP.current) return found.shape
  const { table, tables, where } = await tableFor(deps, request)
  requireReplication(deps)
  if (found.kind === LOOKUP.refetch) return deps.manager.mustRefetch(request.definition, table, found.why, { tables, where })
  return deps.manager.getOrCreate(request.definition, table, { tables, where })
}

/**
 * The request's table, the tables its subqueries read, and its `where` compiled for them, which
 * the new shape is bound by. It is compiled from the request's own parse: the canonical text the
 * shape is stored by parses back to that same tree (`where/canonical.ts`), so this is what
 * compiling the stored text gives, without a second parse (nor one for its subqueries' tables),
 * and a 400 points into the client's text.
 */
async function tableFor(
  deps: ShapeRouteDeps,
  request: ShapeRequest,
): Promise<{ table: TableInfo; tables: SubqueryTables; where: CompiledWhere | undefined }> {
  const table = await deps.tables.get(request.definition.table)
  const source = request.whereSource
  const canonical = request.definition.where
  if (!source || canonical === undefined) return { table, tables: new Map(), where: undefined }
  // A subquery's canonical spelling has SELECT: the tree of a where without one is not walked for its tables.
  const tables = /select/i.test(canonical) ? await subqueryTables(deps.tables, tablesOfParsedWhere(source.parsed)) : new Map<string, TableInfo>()
  return { table, tables, where: compileParsedWhere(source.parsed, canonical, table, tables) }
}

function requireReplication(deps: ShapeRouteDeps): void {
  if (!deps.canCreateShapes()) {
    throw new UnavailableError('Sluice is not connected to PostgreSQL replication yet; retry shortly.')
  }
}

const OPEN = Buffer.from('[')
const COMMA = Buffer.from(',')
const CLOSE = Buffer.from(']')

function renderBody(parts: readonly Buffer[], tail: Buffer | undefined): Buffer {
  const pieces: Buffer[] = [OPEN]
  for (let i = 0; i < parts.length; i++) {
    if (i > 0) pieces.push(COMMA)
    pieces.push(parts[i]!)
  }
  if (tail) {
    if (parts.length > 0) pieces.push(COMMA)
    pieces.push(tail)
  }
  pieces.push(CLOSE)
  return Buffer.concat(pieces)
}
