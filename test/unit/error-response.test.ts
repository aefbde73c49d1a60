import { pino } from 'pino'
import { describe, expect, it } from 'vitest'
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
} from '../../src/errors.js'
import { errorResponse } from '../../src/http/error-response.js'

const log = pino({ level: 'silent' })

describe('errorResponse', () => {
  it('answers 400 with the protocol body for an invalid request', () => {
    const response = errorResponse(
      new InvalidRequestError({ offset: ['is required'], table: ['is required', 'second reason'] }),
      log,
    )
    expect(response).toEqual({
      status: 400,
      headers: { 'cache-control': 'no-store', 'surrogate-control': 'no-store', 'content-type': 'application/json' },
      body: '{"message":"Invalid request","errors":{"offset":["is required"],"table":["is required","second reason"]}}',
    })
  })

  it('answers 400 for InvalidRequestError.of', () => {
    expect(JSON.parse(errorResponse(InvalidRequestError.of('where', 'bad'), log).body)).toEqual({
      message: 'Invalid request',
      errors: { where: ['bad'] },
    })
  })

  it('answers 409 must-refetch with the new handle and a cacheable header', () => {
    const response = errorResponse(new MustRefetchError('3f2a9c1b-1732623456789000', 'handle rotated'), log)
    expect(response.status).toBe(409)
    expect(response.headers['electric-handle']).toBe('3f2a9c1b-1732623456789000')
    expect(response.headers['cache-control']).toBe('public, max-age=60, must-revalidate')
    expect(response.headers).not.toHaveProperty('surrogate-control')
    expect(response.body).toBe('[{"headers":{"control":"must-refetch"}}]')
  })

  it('answers 409 without a handle as no-store', () => {
    const response = errorResponse(new MustRefetchError(undefined, 'shape was dropped'), log)
    expect(response.status).toBe(409)
    expect(response.headers).not.toHaveProperty('electric-handle')
    expect(response.headers['cache-control']).toBe('no-store')
    expect(response.headers['surrogate-control']).toBe('no-store')
    expect(response.body).toBe('[{"headers":{"control":"must-refetch"}}]')
  })

  it('answers 503 with retry-after for an unavailable database', () => {
    expect(errorResponse(new UnavailableError('database unreachable'), log)).toEqual({
      status: 503,
      headers: { 'cache-control': 'no-store', 'surrogate-control': 'no-store', 'content-type': 'application/json', 'retry-after': '5' },
      body: '{"message":"database unreachable"}',
    })
  })

  it.each([
    ['invalid_table_name', 'unexpected ";" at position 5'],
    ['table_not_found', 'table "public"."nope" does not exist'],
    ['table_not_servable', '"public"."v" is a view'],
    ['table_not_permitted', 'Sluice\'s database role may not add "public"."t" to the publication'],
  ] as const)('answers a TableError %s with 400 naming the table parameter, no retry-after', (code, reason) => {
    expect(errorResponse(new TableError(code, reason), log)).toEqual({
      status: 400,
      headers: { 'cache-control': 'no-store', 'surrogate-control': 'no-store', 'content-type': 'application/json' },
      body: JSON.stringify({ message: 'Invalid request', errors: { table: [reason] } }),
    })
  })

  it('answers a lost database connection 503 with retry-after and a warning, never the error text', () => {
    const lines: string[] = []
    const capturing = pino({ level: 'warn' }, { write: (line: string) => void lines.push(line) })
    const lost = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' })
    expect(errorResponse(lost, capturing)).toEqual({
      status: 503,
      headers: { 'cache-control': 'no-store', 'surrogate-control': 'no-store', 'content-type': 'application/json', 'retry-after': '5' },
      body: '{"message":"PostgreSQL is unreachable right now; retry shortly."}',
    })
    expect(lines.map((line) => (JSON.parse(line) as { level: number; msg: string; err: string })).map(({ level, msg, err }) => ({ level, msg, err }))).toEqual([
      { level: 40, msg: 'PostgreSQL is unreachable; answering 503', err: 'connect ECONNREFUSED 127.0.0.1:5432' },
    ])
  })

  it('answers overload with 503, no-store for browsers and CDNs, and Electric\'s jittered retry-after of 6–10 s', () => {
    const seen = new Set<string>()
    for (let i = 0; i < 200; i++) {
      const response = errorResponse(new OverloadedError('Too many live connections'), log)
      expect(response.status).toBe(503)
      expect(response.headers['cache-control']).toBe('no-store')
      expect(response.headers['surrogate-control']).toBe('no-store')
      expect(JSON.parse(response.body)).toEqual({ message: 'Too many live connections' })
      seen.add(response.headers['retry-after']!)
    }
    expect([...seen].map(Number).sort((a, b) => a - b)).toEqual([6, 7, 8, 9, 10])
  })

  it.each([
    [ERROR_CODES.unauthorized, 401, new UnauthorizedError('what to do about it')],
    [ERROR_CODES.notFound, 404, new NotFoundError('what to do about it')],
    [ERROR_CODES.methodNotAllowed, 405, new MethodNotAllowedError('what to do about it')],
  ])('maps %s to %i with its message and no retry-after', (_code, status, error) => {
    const response = errorResponse(error, log)
    expect(response).toEqual({
      status,
      headers: { 'cache-control': 'no-store', 'surrogate-control': 'no-store', 'content-type': 'application/json' },
      body: '{"message":"what to do about it"}',
    })
  })

  it.each([
    ['StartupCheckError', new StartupCheckError('wal_level is replica')],
    ['ConfigError', new ConfigError('PORT is not a number')],
  ])('answers 503 with retry-after for a %s', (_name, error) => {
    const response = errorResponse(error, log)
    expect(response.status).toBe(503)
    expect(response.headers['retry-after']).toBe('5')
    expect(response.headers['cache-control']).toBe('no-store')
    expect(JSON.parse(response.body)).toEqual({ message: error.message })
  })

  it.each([
    ['an Error', new TypeError('Cannot read properties of undefined (reading "rows")')],
    ['a string', 'boom'],
    ['undefined', undefined],
  ])('answers 503 without details for %s', (_name, thrown) => {
    const response = errorResponse(thrown, log)
    expect(response).toEqual({
      status: 503,
      headers: { 'cache-control': 'no-store', 'surrogate-control': 'no-store', 'content-type': 'application/json', 'retry-after': '5' },
      body: '{"message":"Sluice could not serve this request right now; retry shortly."}',
    })
    expect(response.body).not.toContain('at ')
    expect(response.body).not.toContain('rows')
  })

  it('logs an unexpected error with its stack', () => {
    const lines: string[] = []
    const capturing = pino({ level: 'error' }, { write: (line: string) => void lines.push(line) })
    const error = new Error('kaboom')
    errorResponse(error, capturing)
    expect(lines).toHaveLength(1)
    const record = JSON.parse(lines[0]!) as { msg: string; err: { message: string; stack: string } }
    expect(record.msg).toBe('unexpected error while serving a request')
    expect(record.err.message).toBe('kaboom')
    expect(record.err.stack).toContain('kaboom')
  })

  it('answers a request given up while it waited 503 with retry-after, and logs no error', () => {
    const lines: string[] = []
    const capturing = pino({ level: 'warn' }, { write: (line: string) => void lines.push(line) })
    const response = errorResponse(new RequestAbortedError(), capturing)
    expect(response.status).toBe(503)
    expect(response.headers['retry-after']).toBe('5')
    expect(lines).toEqual([])
  })

  it.each<[string, AnySluiceError]>([
    ['InvalidRequestError', new InvalidRequestError({ where: ['bad'] }, { cause: 'parser' })],
    ['TableError', new TableError(ERROR_CODES.tableNotFound, 'gone', { cause: 'parser' })],
    ['UnauthorizedError', new UnauthorizedError('secret', { cause: 'parser' })],
    ['NotFoundError', new NotFoundError('no shape', { cause: 'parser' })],
    ['MethodNotAllowedError', new MethodNotAllowedError('off', { cause: 'parser' })],
    ['MustRefetchError', new MustRefetchError(undefined, 'dropped', { cause: 'parser' })],
    ['UnavailableError', new UnavailableError('starting', { cause: 'parser' })],
    ['DatabaseUnreachableError', new DatabaseUnreachableError({ cause: 'parser' })],
    ['OverloadedError', new OverloadedError('busy', { cause: 'parser' })],
    ['RequestAbortedError', new RequestAbortedError({ cause: 'parser' })],
    ['InternalError', new InternalError({ cause: 'parser' })],
    ['StartupCheckError', new StartupCheckError('wal_level', { cause: 'parser' })],
    ['ConfigError', new ConfigError('PORT', { cause: 'parser' })],
  ])('%s names itself, has a stable code with a row in the table, and keeps its cause', (name, error) => {
    expect(error.name).toBe(name)
    expect(error.constructor.name).toBe(name)
    expect(Object.values(ERROR_CODES)).toContain(error.code)
    expect(error.cause).toBe('parser')
    expect(String(error)).toBe(`${name}: ${error.message}`)
  })
})
