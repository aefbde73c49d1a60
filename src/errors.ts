/**
 * Errors are values with a stable code; the HTTP layer maps each code to a status and the
 * protocol's JSON body in one table (`http/error-response.ts`). Messages say how to fix the
 * problem. Every class names itself, narrows `code` to its own, and takes an optional
 * `{ cause }` (ES2022), so a log shows what went wrong underneath.
 */
export const ERROR_CODES = {
  invalidRequest: 'invalid_request',
  invalidTableName: 'invalid_table_name',
  tableNotFound: 'table_not_found',
  tableNotServable: 'table_not_servable',
  tableNotPermitted: 'table_not_permitted',
  unauthorized: 'unauthorized',
  notFound: 'not_found',
  methodNotAllowed: 'method_not_allowed',
  mustRefetch: 'must_refetch',
  unavailable: 'unavailable',
  databaseUnreachable: 'database_unreachable',
  overloaded: 'overloaded',
  aborted: 'aborted',
  internal: 'internal',
  startupCheckFailed: 'startup_check_failed',
  invalidConfig: 'invalid_config',
} as const
export type ErrorCode = (typeof ERROR_CODES)[keyof typeof ERROR_CODES]

export abstract class SluiceError extends Error {
  override readonly name: string = 'SluiceError'
  abstract readonly code: ErrorCode
}

/** 400: one or more request parameters are wrong; `errors` maps parameter → reasons. */
export class InvalidRequestError extends SluiceError {
  override readonly name = 'InvalidRequestError'
  readonly code = ERROR_CODES.invalidRequest
  readonly errors: Readonly<Record<string, readonly string[]>>
  constructor(errors: Record<string, readonly string[]>, options?: ErrorOptions) {
    super(`Invalid request: ${JSON.stringify(errors)}`, options)
    this.errors = errors
  }

  static of(param: string, reason: string): InvalidRequestError {
    return new InvalidRequestError({ [param]: [reason] })
  }
}

export type TableErrorCode =
  | typeof ERROR_CODES.invalidTableName
  | typeof ERROR_CODES.tableNotFound
  | typeof ERROR_CODES.tableNotServable
  | typeof ERROR_CODES.tableNotPermitted

/**
 * A relation Sluice cannot serve, from `pg/`: a malformed name, no such table, one PostgreSQL
 * cannot replicate, or one the role may not add to the publication. Permanent (I15); the HTTP
 * layer answers it as a 400 naming the parameter that chose the table.
 */
export class TableError extends SluiceError {
  override readonly name = 'TableError'
  readonly code: TableErrorCode
  constructor(code: TableErrorCode, message: string, options?: ErrorOptions) {
    super(message, options)
    this.code = code
  }
}

/** 401: the request lacks the secret. */
export class UnauthorizedError extends SluiceError {
  override readonly name = 'UnauthorizedError'
  readonly code = ERROR_CODES.unauthorized
}

/** 404: no such shape (or path). */
export class NotFoundError extends SluiceError {
  override readonly name = 'NotFoundError'
  readonly code = ERROR_CODES.notFound
}

/** 405: the method is switched off by configuration. */
export class MethodNotAllowedError extends SluiceError {
  override readonly name = 'MethodNotAllowedError'
  readonly code = ERROR_CODES.methodNotAllowed
}

/** 409: the client's handle is gone; it must start again from `handle`. */
export class MustRefetchError extends SluiceError {
  override readonly name = 'MustRefetchError'
  readonly code = ERROR_CODES.mustRefetch
  readonly handle: string | undefined
  constructor(handle: string | undefined, why: string, options?: ErrorOptions) {
    super(why, options)
    this.handle = handle
  }
}

/** 503: the database or replication is not ready; the client should retry after a while. */
export class UnavailableError extends SluiceError {
  override readonly name = 'UnavailableError'
  readonly code = ERROR_CODES.unavailable
}

/** 503: a query failed because PostgreSQL cannot be reached (`pg/connection-errors.ts`); it passes. */
export class DatabaseUnreachableError extends SluiceError {
  override readonly name = 'DatabaseUnreachableError'
  readonly code = ERROR_CODES.databaseUnreachable
  constructor(options?: ErrorOptions) {
    super('PostgreSQL is unreachable right now; retry shortly.', options)
  }
}

/**
 * 503: too much load right now (SLUICE_MAX_LIVE_CONNECTIONS, the snapshot queue). Its
 * `retry-after` is jittered, as Electric's, so refused clients do not all come back at once.
 */
export class OverloadedError extends SluiceError {
  override readonly name = 'OverloadedError'
  readonly code = ERROR_CODES.overloaded
}

/**
 * A request given up while it waited: its client went away, or the server is shutting down.
 * Nothing failed, so it is not logged as an error; a client still there gets a 503 to retry.
 */
export class RequestAbortedError extends SluiceError {
  override readonly name = 'RequestAbortedError'
  readonly code = ERROR_CODES.aborted
  constructor(options?: ErrorOptions) {
    super('The request was given up (the client left or the server is stopping); retry shortly.', options)
  }
}

/**
 * 503: anything that is not a Sluice error is our fault. Its `cause` is logged with its stack;
 * the client gets this generic message, never the cause.
 */
export class InternalError extends SluiceError {
  override readonly name = 'InternalError'
  readonly code = ERROR_CODES.internal
  constructor(options?: ErrorOptions) {
    super('Sluice could not serve this request right now; retry shortly.', options)
  }
}

/** The server cannot start against this database until an operator fixes something. */
export class StartupCheckError extends SluiceError {
  override readonly name = 'StartupCheckError'
  readonly code = ERROR_CODES.startupCheckFailed
}

export class ConfigError extends SluiceError {
  override readonly name = 'ConfigError'
  readonly code = ERROR_CODES.invalidConfig
}

/** Every concrete error, discriminated by `code`: what the HTTP error table is keyed by. */
export type AnySluiceError =
  | InvalidRequestError
  | TableError
  | UnauthorizedError
  | NotFoundError
  | MethodNotAllowedError
  | MustRefetchError
  | UnavailableError
  | DatabaseUnreachableError
  | OverloadedError
  | RequestAbortedError
  | InternalError
  | StartupCheckError
  | ConfigError
