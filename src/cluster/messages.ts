/**
 * What the owner process and its HTTP workers say to each other over the cluster's IPC channel
 * (docs/ARCHITECTURE.md: Worker processes). The channel uses Node's `advanced` serialization, so
 * LSNs stay `bigint`. Errors cross it as their code and fields and are rebuilt as the same
 * classes, so a worker answers them exactly as the owner would have.
 */
import {
  ConfigError,
  DatabaseUnreachableError,
  ERROR_CODES,
  InternalError,
  InvalidRequestError,
  MethodNotAllowedError,
  MustRefetchError,
  NotFoundError,
  OverloadedError,
  RequestAbortedError,
  SluiceError,
  StartupCheckError,
  TableError,
  UnauthorizedError,
  UnavailableError,
  type ErrorCode,
} from '../errors.js'
import type { Health } from '../http/app.js'
import { isConnectionError } from '../pg/connection-errors.js'
import type { TableInfo } from '../pg/introspect.js'
import type { Lsn } from '../pg/lsn.js'
import type { Offset } from '../protocol/offset.js'
import type { MetricsJson } from './owner-metrics.js'
import type { ShapeDefinition } from '../shapes/shape-definition.js'
import type { ShapeHandle } from '../shapes/shape-handle.js'
import type { SubqueryTables } from '../shapes/where/compile-where.js'

/** A shape as the owner holds it at one moment. */
export interface ShapeState {
  readonly id: number
  readonly head: Offset | undefined
  readonly snapshotComplete: boolean
  /** Dropped: its clients refetch, or get `failure` (a 400) when it can never be served. */
  readonly gone: boolean
  readonly failure?: WireError
}

/**
 * Owner → workers, after commits become visible: every shape whose state changed since the last
 * feed, with the LSN committed read in the same step (docs/ARCHITECTURE.md I16, I27). The first
 * feed a worker gets holds every shape.
 */
export interface FeedMessage {
  readonly kind: 'feed'
  readonly committedLsn: Lsn
  readonly health: Health
  readonly shapes: readonly ShapeState[]
  /**
   * Every shape whose move-in is being read, with its `heldFrom` (docs/ARCHITECTURE.md I16, I25):
   * all of them in each feed, read with `committedLsn`, so a worker holds its
   * `global_last_seen_lsn` below a move-in exactly as the owner does.
   */
  readonly held: readonly (readonly [shapeId: number, heldFrom: Lsn])[]
}

/** Owner → worker: the answer to one `RequestMessage`. */
export interface ReplyMessage {
  readonly kind: 'reply'
  readonly requestId: number
  readonly shape?: ShapeState
  /** The machine's metrics, the asking worker's among them, for a `metrics` request. */
  readonly metrics?: MetricsJson
  readonly error?: WireError
}

/** Owner → worker: stop serving (the owner shuts down). */
export interface StopMessage {
  readonly kind: 'stop'
}

/** Owner → worker: send your registry, for a scrape another worker answers (`metrics-sum.ts`). */
export interface ScrapeMessage {
  readonly kind: 'scrape'
  readonly scrapeId: number
}

export type OwnerMessage = FeedMessage | ReplyMessage | StopMessage | ScrapeMessage

/**
 * Worker → owner: what only the owner may do to shapes. `tables`: those the where's subqueries
 * read, as the worker's catalog has them (the owner compiles the where against them). `metrics`:
 * the sum for a scrape this worker answers, `own` its registry (`metrics-sum.ts`).
 */
export type OwnerOperation =
  | { readonly op: 'get-or-create'; readonly definition: ShapeDefinition; readonly table: TableInfo; readonly tables: SubqueryTables }
  | { readonly op: 'replace'; readonly definition: ShapeDefinition; readonly table: TableInfo; readonly tables: SubqueryTables; readonly why: string }
  | { readonly op: 'drop'; readonly handle: ShapeHandle; readonly reason: string }
  | { readonly op: 'metrics'; readonly own: MetricsJson }

export interface RequestMessage {
  readonly kind: 'request'
  readonly requestId: number
  readonly operation: OwnerOperation
}

/** Worker → owner: handles it served lately, so the owner's least-recently-used order counts them. */
export interface TouchMessage {
  readonly kind: 'touch'
  readonly handles: readonly ShapeHandle[]
}

/** Worker → owner: it listens for messages; the owner answers with a feed of every shape. */
export interface ReadyMessage {
  readonly kind: 'ready'
}

/** Worker → owner: it serves HTTP at `url`. */
export interface ListeningMessage {
  readonly kind: 'listening'
  readonly url: string
}

/** Worker → owner: its registry, the answer to one `ScrapeMessage`. */
export interface ScrapedMessage {
  readonly kind: 'scraped'
  readonly scrapeId: number
  readonly metrics: MetricsJson
}

export type WorkerMessage = RequestMessage | TouchMessage | ReadyMessage | ListeningMessage | ScrapedMessage

export interface WireError {
  readonly code: ErrorCode | undefined
  readonly message: string
  readonly handle?: string
  readonly errors?: Readonly<Record<string, readonly string[]>>
  /** The message of the error's `cause`, which the error table may log (an unreachable database's). */
  readonly cause?: string
}

export function toWireError(error: unknown): WireError {
  if (error instanceof InvalidRequestError) return { code: error.code, message: error.message, errors: error.errors }
  if (error instanceof MustRefetchError) return { code: error.code, message: error.message, ...(error.handle !== undefined ? { handle: error.handle } : {}) }
  if (error instanceof SluiceError) return { code: error.code, message: error.message, ...(error.cause instanceof Error ? { cause: error.cause.message } : {}) }
  // Classified as the owner's own answer would be (http/error-response.ts): PostgreSQL shutting down is a 503.
  if (isConnectionError(error)) return toWireError(new DatabaseUnreachableError({ cause: error }))
  return { code: undefined, message: error instanceof Error ? error.message : String(error) }
}

/** The error `wire` was made from: same class, code and fields (the message of those that take one). */
export function fromWireError(wire: WireError): SluiceError {
  const { message } = wire
  const code = wire.code
  switch (code) {
    case ERROR_CODES.invalidRequest:
      return new InvalidRequestError({ ...wire.errors })
    case ERROR_CODES.invalidTableName:
    case ERROR_CODES.tableNotFound:
    case ERROR_CODES.tableNotServable:
    case ERROR_CODES.tableNotPermitted:
      return new TableError(code, message)
    case ERROR_CODES.unauthorized:
      return new UnauthorizedError(message)
    case ERROR_CODES.notFound:
      return new NotFoundError(message)
    case ERROR_CODES.methodNotAllowed:
      return new MethodNotAllowedError(message)
    case ERROR_CODES.mustRefetch:
      return new MustRefetchError(wire.handle, message)
    case ERROR_CODES.unavailable:
      return new UnavailableError(message)
    case ERROR_CODES.databaseUnreachable:
      return new DatabaseUnreachableError({ cause: new Error(wire.cause ?? message) })
    case ERROR_CODES.overloaded:
      return new OverloadedError(message)
    case ERROR_CODES.aborted:
      return new RequestAbortedError()
    case ERROR_CODES.startupCheckFailed:
      return new StartupCheckError(message)
    case ERROR_CODES.invalidConfig:
      return new ConfigError(message)
    case ERROR_CODES.internal:
    case undefined:
      // The owner logged what went wrong; the client gets the generic 503.
      return new InternalError({ cause: new Error(message) })
    default:
      return unknownCode(code)
  }
}

/** A code added to `errors.ts` must be rebuilt above: the type checker stops here otherwise. */
function unknownCode(code: never): SluiceError {
  return new InternalError({ cause: new Error(`unknown error code ${String(code)}`) })
}

export function isOwnerMessage(message: unknown): message is OwnerMessage {
  const kind = (message as { kind?: unknown } | null)?.kind
  return kind === 'feed' || kind === 'reply' || kind === 'stop' || kind === 'scrape'
}

export function isWorkerMessage(message: unknown): message is WorkerMessage {
  const kind = (message as { kind?: unknown } | null)?.kind
  return kind === 'request' || kind === 'touch' || kind === 'ready' || kind === 'listening' || kind === 'scraped'
}
