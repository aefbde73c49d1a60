/**
 * Every header, query parameter and control value of the wire protocol, once
 * (`docs/PROTOCOL.md`). Tests spell the wire literally instead of importing these.
 */
export const HEADERS = {
  handle: 'electric-handle',
  offset: 'electric-offset',
  schema: 'electric-schema',
  cursor: 'electric-cursor',
  upToDate: 'electric-up-to-date',
  hasData: 'electric-has-data',
  etag: 'etag',
  ifNoneMatch: 'if-none-match',
  cacheControl: 'cache-control',
  /** What CDNs (Fastly, Akamai) obey instead of `cache-control`; Electric sends `no-store` on errors. */
  surrogateControl: 'surrogate-control',
  retryAfter: 'retry-after',
  location: 'location',
  lastEventId: 'last-event-id',
  accelBuffering: 'x-accel-buffering',
  /** Marks a subset snapshot response (its body is `{metadata, data}`, not a log). */
  snapshot: 'electric-snapshot',
  /** [sluice] The process id of the HTTP worker that answered (`SLUICE_WORKERS` above 1). */
  worker: 'x-sluice-worker',
} as const

export const PARAMS = {
  table: 'table',
  offset: 'offset',
  handle: 'handle',
  live: 'live',
  liveSse: 'live_sse',
  experimentalLiveSse: 'experimental_live_sse',
  cursor: 'cursor',
  where: 'where',
  params: 'params',
  columns: 'columns',
  replica: 'replica',
  log: 'log',
  secret: 'secret',
  /** Set by a proxy: the columns a subset may filter and order on (and the default projection). */
  queryableColumns: 'queryable_columns',
  subsetWhere: 'subset__where',
  /** A JSON object `{"1": "v"}`, or one `subset__params[n]` per parameter. */
  subsetParams: 'subset__params',
  subsetLimit: 'subset__limit',
  subsetOffset: 'subset__offset',
  subsetOrderBy: 'subset__order_by',
} as const

/** Keys of a `POST /v1/shape` body (a subset request), flat or nested under `subset`. */
export const SUBSET_BODY = {
  nested: 'subset',
  where: 'where',
  params: 'params',
  limit: 'limit',
  offset: 'offset',
  orderBy: 'order_by',
} as const

export const CONTROL = {
  upToDate: 'up-to-date',
  snapshotEnd: 'snapshot-end',
  mustRefetch: 'must-refetch',
} as const

/** Event messages of shapes with subqueries: rows of a value moved out of (or into) a subquery's result. */
export const EVENTS = { moveOut: 'move-out', moveIn: 'move-in' } as const
export type MoveEvent = (typeof EVENTS)[keyof typeof EVENTS]

/** Headers a change or event message of a shape with subqueries carries, as Electric names them. */
export const SUBQUERY_HEADERS = { tags: 'tags', removedTags: 'removed_tags', activeConditions: 'active_conditions' } as const

export const OPERATIONS = { insert: 'insert', update: 'update', delete: 'delete' } as const
export type Operation = (typeof OPERATIONS)[keyof typeof OPERATIONS]

export const OFFSET_NOW = 'now'

/** Headers the browser must be allowed to read, or the client cannot follow the log. */
export const EXPOSED_HEADERS = [
  HEADERS.handle,
  HEADERS.offset,
  HEADERS.schema,
  HEADERS.cursor,
  HEADERS.upToDate,
  HEADERS.hasData,
  HEADERS.etag,
  HEADERS.retryAfter,
  HEADERS.snapshot,
] as const

/** `electric-cursor` counts 20 s intervals since this instant (the same epoch as Electric). */
export const CURSOR_EPOCH_MS = Date.UTC(2024, 9, 9)
export const CURSOR_INTERVAL_MS = 20_000

/** Server-Sent Events (docs/PROTOCOL.md: Server-Sent Events). */
export const SSE = {
  contentType: 'text/event-stream',
  keepAliveComment: ': keep-alive',
  /** `<handle>:<offset>`, the `id:` of every batch and the `Last-Event-ID` a browser resumes with. */
  eventIdSeparator: ':',
} as const
