/**
 * The one table from error code to HTTP status, body and headers (docs/PROTOCOL.md: Status codes).
 * A lost database connection is a 503 with `retry-after`. Anything else that is not a
 * `SluiceError` is our fault: logged with its stack, answered 503 with
 * a generic message, never a stack trace.
 */
import { randomInt } from 'node:crypto'
import { ERROR_CODES, InvalidRequestError, MustRefetchError, OverloadedError, SluiceError, UnavailableError, type ErrorCode } from '../errors.js'
import type { Logger } from '../log.js'
import { isConnectionError } from '../pg/connection-errors.js'
import { CONTROL, HEADERS } from '../protocol/constants.js'
import { CACHE_CONTROL, UNCACHEABLE } from './cache-headers.js'

export interface ErrorResponse {
  readonly status: number
  readonly headers: Record<string, string>
  readonly body: string
}

const STATUS: Record<ErrorCode, number> = {
  [ERROR_CODES.invalidRequest]: 400,
  [ERROR_CODES.unauthorized]: 401,
  [ERROR_CODES.notFound]: 404,
  [ERROR_CODES.methodNotAllowed]: 405,
  [ERROR_CODES.mustRefetch]: 409,
  [ERROR_CODES.unavailable]: 503,
  [ERROR_CODES.overloaded]: 503,
  [ERROR_CODES.aborted]: 503,
  [ERROR_CODES.startupCheckFailed]: 503,
  [ERROR_CODES.invalidConfig]: 503,
}

const RETRY_AFTER_SECONDS = 5

/** Electric's overload answer: 5 s plus 1–5 s of jitter. */
function overloadRetryAfterSeconds(): number {
  return RETRY_AFTER_SECONDS + randomInt(1, 6)
}

export function errorResponse(error: unknown, log: Logger): ErrorResponse {
  if (error instanceof MustRefetchError) {
    // With a handle it is a redirect that a CDN may share for a minute (as Electric); without, an error.
    const headers: Record<string, string> = error.handle
      ? { [HEADERS.cacheControl]: CACHE_CONTROL.mustRefetch, [HEADERS.handle]: error.handle }
      : { ...UNCACHEABLE }
    headers['content-type'] = 'application/json'
    return { status: 409, headers, body: JSON.stringify([{ headers: { control: CONTROL.mustRefetch } }]) }
  }
  if (error instanceof InvalidRequestError) {
    return json(400, { message: 'Invalid request', errors: error.errors })
  }
  if (error instanceof OverloadedError) {
    return json(503, { message: error.message }, { [HEADERS.retryAfter]: String(overloadRetryAfterSeconds()) })
  }
  if (error instanceof UnavailableError) {
    return json(503, { message: error.message }, { [HEADERS.retryAfter]: String(error.retryAfterSeconds) })
  }
  if (error instanceof SluiceError) {
    const status = STATUS[error.code]
    const extra: Record<string, string> = status === 503 ? { [HEADERS.retryAfter]: String(RETRY_AFTER_SECONDS) } : {}
    return json(status, { message: error.message }, extra)
  }
  if (isConnectionError(error)) {
    log.warn({ err: (error as Error).message }, 'PostgreSQL is unreachable; answering 503')
    return json(
      503,
      { message: 'PostgreSQL is unreachable right now; retry shortly.' },
      { [HEADERS.retryAfter]: String(RETRY_AFTER_SECONDS) },
    )
  }
  log.error({ err: error }, 'unexpected error while serving a request')
  return json(
    503,
    { message: 'Sluice could not serve this request right now; retry shortly.' },
    { [HEADERS.retryAfter]: String(RETRY_AFTER_SECONDS) },
  )
}

function json(status: number, body: unknown, headers: Record<string, string> = {}): ErrorResponse {
  return {
    status,
    headers: { ...UNCACHEABLE, 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  }
}
