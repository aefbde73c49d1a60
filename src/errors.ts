/**
 * Errors are values with a stable code; the HTTP layer maps each code to a status and the
 * protocol's JSON body (`http/error-response.ts`). Messages say how to fix the problem.
 */
export const ERROR_CODES = {
  invalidRequest: 'invalid_request',
  unauthorized: 'unauthorized',
  notFound: 'not_found',
  methodNotAllowed: 'method_not_allowed',
  mustRefetch: 'must_refetch',
  unavailable: 'unavailable',
  overloaded: 'overloaded',
  aborted: 'aborted',
  startupCheckFailed: 'startup_check_failed',
  invalidConfig: 'invalid_config',
} as const
export type ErrorCode = (typeof ERROR_CODES)[keyof typeof ERROR_CODES]

export class SluiceError extends Error {
  readonly code: ErrorCode
  constructor(code: ErrorCode, message: string) {
    super(message)
    this.name = 'SluiceError'
    this.code = code
  }
}

/** 400: one or more request parameters are wrong; `errors` maps parameter → reasons. */
export class InvalidRequestError extends SluiceError {
  readonly errors: Readonly<Record<string, readonly string[]>>
  constructor(errors: Record<string, readonly string[]>) {
    super(ERROR_CODES.invalidRequest, `Invalid request: ${JSON.stringify(errors)}`)
    this.errors = errors
  }

  static of(param: string, reason: string): InvalidRequestError {
    return new InvalidRequestError({ [param]: [reason] })
  }
}

/** 409: the client's handle is gone; it must start again from `handle`. */
export class MustRefetchError extends SluiceError {
  readonly handle: string | undefined
  constructor(handle: string | undefined, why: string) {
    super(ERROR_CODES.mustRefetch, why)
    this.handle = handle
  }
}

/** 503: the database or replication is not ready; the client should retry after a while. */
export class UnavailableError extends SluiceError {
  readonly retryAfterSeconds: number
  constructor(message: string, retryAfterSeconds = 5) {
    super(ERROR_CODES.unavailable, message)
    this.retryAfterSeconds = retryAfterSeconds
  }
}

/**
 * 503: too much load right now (SLUICE_MAX_LIVE_CONNECTIONS, the snapshot queue). Its
 * `retry-after` is jittered, as Electric's, so refused clients do not all come back at once.
 */
export class OverloadedError extends SluiceError {
  constructor(message: string) {
    super(ERROR_CODES.overloaded, message)
  }
}

/**
 * A request given up while it waited: its client went away, or the server is shutting down.
 * Nothing failed, so it is not logged as an error; a client still there gets a 503 to retry.
 */
export class RequestAbortedError extends SluiceError {
  constructor() {
    super(ERROR_CODES.aborted, 'The request was given up (the client left or the server is stopping); retry shortly.')
    this.name = 'RequestAbortedError'
  }
}

/** The server cannot start against this database until an operator fixes something. */
export class StartupCheckError extends SluiceError {
  constructor(message: string) {
    super(ERROR_CODES.startupCheckFailed, message)
  }
}

export class ConfigError extends SluiceError {
  constructor(message: string) {
    super(ERROR_CODES.invalidConfig, message)
  }
}
