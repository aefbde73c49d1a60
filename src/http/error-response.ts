/**
 * The one table from error code to HTTP status, body and headers (docs/PROTOCOL.md: Status
 * codes; docs/ARCHITECTURE.md I15). Whatever is thrown is first made a Sluice error — a lost
 * database connection `DatabaseUnreachableError`, anything else `InternalError` with the thrown
 * value as its cause — and then answered by its code's row, so no status is decided elsewhere.
 */
import {
  DatabaseUnreachableError,
  ERROR_CODES,
  InternalError,
  SluiceError,
  type AnySluiceError,
  type ErrorCode,
  type InvalidRequestError,
  type TableError,
} from '../errors.js'
import type { Logger } from '../log.js'
import { isConnectionError } from '../pg/connection-errors.js'
import { CONTROL, HEADERS, PARAMS } from '../protocol/constants.js'
import { CACHE_CONTROL, UNCACHEABLE } from './cache-headers.js'
import { overloadRetryAfterSeconds, RETRY_AFTER_SECONDS } from './retry-after.js'

export interface ErrorResponse {
  readonly status: number
  readonly headers: Record<string, string>
  readonly body: string
}

/** The concrete error class that carries `code` (a class may carry several, as `TableError`). */
type ErrorWithCode<C extends ErrorCode> = AnySluiceError extends infer E ? (E extends { readonly code: infer K } ? (C extends K ? E : never) : never) : never

const RETRY = {
  /** No `retry-after`: a 4xx is permanent, or not about timing. */
  none: 'none',
  standard: 'standard',
  /** Overload: jittered, so refused clients spread out. */
  jittered: 'jittered',
} as const
type Retry = (typeof RETRY)[keyof typeof RETRY]

interface Row<E> {
  readonly status: number
  readonly retry: Retry
  /** The protocol's JSON body; `{ message }` when absent. */
  readonly body?: (error: E) => unknown
  /** Replaces the uncacheable default (only a 409 with a handle may be shared). */
  readonly cacheHeaders?: (error: E) => Record<string, string>
  /** Only what an operator must see is logged: a client that left or a bad request is not. */
  readonly log?: (error: E, log: Logger) => void
}

const tableRow: Row<TableError> = { status: 400, retry: RETRY.none, body: (error) => invalidRequest(parameterErrorsOf(error)) }
const unavailableRow = { status: 503, retry: RETRY.standard } as const

const TABLE: { readonly [C in ErrorCode]: Row<ErrorWithCode<C>> } = {
  [ERROR_CODES.invalidRequest]: { status: 400, retry: RETRY.none, body: (error) => invalidRequest(error.errors) },
  [ERROR_CODES.invalidTableName]: tableRow,
  [ERROR_CODES.tableNotFound]: tableRow,
  [ERROR_CODES.tableNotServable]: tableRow,
  [ERROR_CODES.tableNotPermitted]: tableRow,
  [ERROR_CODES.unauthorized]: { status: 401, retry: RETRY.none },
  [ERROR_CODES.notFound]: { status: 404, retry: RETRY.none },
  [ERROR_CODES.methodNotAllowed]: { status: 405, retry: RETRY.none },
  [ERROR_CODES.mustRefetch]: {
    status: 409,
    retry: RETRY.none,
    body: () => [{ headers: { control: CONTROL.mustRefetch } }],
    // With a handle it is a redirect that a CDN may share for a minute (as Electric); without, an error.
    cacheHeaders: (error) => (error.handle ? { [HEADERS.cacheControl]: CACHE_CONTROL.mustRefetch, [HEADERS.handle]: error.handle } : { ...UNCACHEABLE }),
  },
  [ERROR_CODES.unavailable]: unavailableRow,
  [ERROR_CODES.databaseUnreachable]: {
    ...unavailableRow,
    log: (error, log) => log.warn({ err: (error.cause as Error).message }, 'PostgreSQL is unreachable; answering 503'),
  },
  [ERROR_CODES.overloaded]: { status: 503, retry: RETRY.jittered },
  [ERROR_CODES.aborted]: unavailableRow,
  [ERROR_CODES.internal]: { ...unavailableRow, log: (error, log) => log.error({ err: error.cause }, 'unexpected error while serving a request') },
  [ERROR_CODES.startupCheckFailed]: unavailableRow,
  [ERROR_CODES.invalidConfig]: unavailableRow,
}

export function errorResponse(thrown: unknown, log: Logger): ErrorResponse {
  const error = asSluiceError(thrown)
  const row = TABLE[error.code] as Row<AnySluiceError>
  row.log?.(error, log)
  const headers: Record<string, string> = { ...(row.cacheHeaders?.(error) ?? UNCACHEABLE), 'content-type': 'application/json' }
  if (row.retry !== RETRY.none) {
    headers[HEADERS.retryAfter] = String(row.retry === RETRY.jittered ? overloadRetryAfterSeconds() : RETRY_AFTER_SECONDS)
  }
  const body = row.body ? row.body(error) : { message: error.message }
  return { status: row.status, headers, body: JSON.stringify(body) }
}

/**
 * The request parameters an error is about, for a 400's `errors`: a `TableError` from `pg/`
 * concerns the `table` parameter.
 */
export function parameterErrorsOf(error: InvalidRequestError | TableError): Readonly<Record<string, readonly string[]>> {
  return 'errors' in error ? error.errors : { [PARAMS.table]: [error.message] }
}

function asSluiceError(thrown: unknown): AnySluiceError {
  if (thrown instanceof SluiceError) return thrown as AnySluiceError
  if (isConnectionError(thrown)) return new DatabaseUnreachableError({ cause: thrown })
  return new InternalError({ cause: thrown })
}

function invalidRequest(errors: Readonly<Record<string, readonly string[]>>): unknown {
  return { message: 'Invalid request', errors }
}
