/**
 * What crosses the IPC channel between the owner and its HTTP workers (docs/ARCHITECTURE.md I27):
 * every error class of `errors.ts` arrives as itself — class, code, status-relevant fields — so a
 * worker answers it exactly as the owner would have. Serialized as Node's `advanced` IPC does.
 */
import { deserialize, serialize } from 'node:v8'
import { describe, expect, it } from 'vitest'
import { fromWireError, toWireError } from '../src/cluster/messages.js'
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
  StartupCheckError,
  TableError,
  UnauthorizedError,
  UnavailableError,
  type AnySluiceError,
} from '../src/errors.js'
import { errorResponse } from '../src/http/error-response.js'
import { createLogger } from '../src/log.js'

const EVERY_ERROR: readonly AnySluiceError[] = [
  InvalidRequestError.of('where', 'is not valid'),
  new TableError(ERROR_CODES.invalidTableName, 'bad name'),
  new TableError(ERROR_CODES.tableNotFound, 'no such table'),
  new TableError(ERROR_CODES.tableNotServable, 'a view'),
  new TableError(ERROR_CODES.tableNotPermitted, 'not in SLUICE_TABLES'),
  new UnauthorizedError('secret'),
  new NotFoundError('no shape'),
  new MethodNotAllowedError('deletion off'),
  new MustRefetchError('123-456', 'shape was dropped'),
  new MustRefetchError(undefined, 'shape was dropped'),
  new UnavailableError('replication'),
  new DatabaseUnreachableError({ cause: new Error('connect ECONNREFUSED') }),
  new OverloadedError('too many'),
  new RequestAbortedError(),
  new InternalError({ cause: new Error('boom') }),
  new StartupCheckError('wal_level'),
  new ConfigError('PORT'),
]

const overIpc = <T>(value: T): T => deserialize(serialize(value)) as T
const log = createLogger('silent')

describe('errors over IPC', () => {
  it('covers every error code', () => {
    expect(new Set(EVERY_ERROR.map((error) => error.code))).toEqual(new Set(Object.values(ERROR_CODES)))
  })

  it.each(EVERY_ERROR.map((error) => [`${error.name} ${error.code}`, error] as const))('%s arrives as itself', (_, error) => {
    const rebuilt = fromWireError(overIpc(toWireError(error)))
    expect(rebuilt.constructor).toBe(error.constructor)
    expect(rebuilt.code).toBe(error.code)
    if (!(error instanceof InternalError)) expect(rebuilt.message).toBe(error.message)
    if (error instanceof MustRefetchError) expect((rebuilt as MustRefetchError).handle).toBe(error.handle)
    if (error instanceof InvalidRequestError) expect((rebuilt as InvalidRequestError).errors).toEqual(error.errors)
    if (error instanceof DatabaseUnreachableError) expect((rebuilt.cause as Error).message).toBe((error.cause as Error).message)
    const { headers: sent, ...answer } = errorResponse(error, log)
    const { headers: rebuiltHeaders, ...rebuiltAnswer } = errorResponse(rebuilt, log)
    const { 'retry-after': _a, ...stable } = sent
    const { 'retry-after': _b, ...rebuiltStable } = rebuiltHeaders
    expect(rebuiltAnswer).toEqual(answer)
    expect(rebuiltStable).toEqual(stable)
  })

  it("answers PostgreSQL's shutdown relayed from the owner as the owner would: 503 with retry-after, not 500", () => {
    const shuttingDown = Object.assign(new Error('the database system is shutting down'), { code: '57P03' })
    const rebuilt = fromWireError(overIpc(toWireError(shuttingDown)))
    expect(rebuilt).toBeInstanceOf(DatabaseUnreachableError)
    const answer = errorResponse(rebuilt, log)
    expect(answer.status).toBe(503)
    expect(answer.headers['retry-after']).toBeDefined()
  })

  it('answers an error that is not a Sluice error with the generic 503', () => {
    const rebuilt = fromWireError(overIpc(toWireError(new TypeError('x is undefined'))))
    expect(rebuilt).toBeInstanceOf(InternalError)
  })
})
