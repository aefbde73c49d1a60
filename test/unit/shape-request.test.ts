import { describe, expect, it } from 'vitest'
import { InvalidRequestError } from '../../src/errors.js'
import { parseShapeRequest, type ShapeRequest } from '../../src/http/shape-request.js'
import { FOREIGN_HANDLE } from '../../src/shapes/shape-handle.js'

const HANDLE = '3f2a9c1b-1732623456789000'

function parse(query: string): ShapeRequest {
  const params = new URLSearchParams(query)
  return parseShapeRequest((name) => params.get(name) ?? undefined)
}

/** The `errors` of the InvalidRequestError that `query` is rejected with. */
function errorsOf(query: string): Readonly<Record<string, readonly string[]>> {
  try {
    parse(query)
  } catch (error) {
    expect(error).toBeInstanceOf(InvalidRequestError)
    return (error as InvalidRequestError).errors
  }
  throw new Error(`expected ${query} to be rejected`)
}

const OFFSET_REASON = 'must be -1, now, or <tx>_<op> (two decimal numbers, op may be inf)'

describe('parseShapeRequest: accepted', () => {
  it('reads an initial request with defaults', () => {
    expect(parse('table=items&offset=-1')).toEqual({
      definition: { table: { schema: 'public', name: 'items' }, replica: 'default', log: 'full' },
      offset: { tx: -1n, op: 0 },
      handle: undefined,
      live: false,
      liveSse: false,
      cursor: undefined,
    })
  })

  it('reads a live request from an offset with handle and cursor', () => {
    expect(parse(`table=items&offset=26848344_3&handle=${HANDLE}&live=true&cursor=362880`)).toEqual({
      definition: { table: { schema: 'public', name: 'items' }, replica: 'default', log: 'full' },
      offset: { tx: 26848344n, op: 3 },
      handle: HANDLE,
      live: true,
      liveSse: false,
      cursor: '362880',
    })
  })

  it('reads SSE mode from live_sse or experimental_live_sse, only with live', () => {
    expect(parse(`table=items&offset=5_0&handle=${HANDLE}&live=true&live_sse=true`).liveSse).toBe(true)
    expect(parse(`table=items&offset=5_0&handle=${HANDLE}&live=true&experimental_live_sse=true`).liveSse).toBe(true)
    expect(parse(`table=items&offset=5_0&handle=${HANDLE}&live=true&live_sse=false`).liveSse).toBe(false)
    expect(parse(`table=items&offset=5_0&handle=${HANDLE}&live_sse=true`).liveSse).toBe(false)
  })

  it.each(['-1', 'now'])('[sluice] allows live with offset %s in SSE mode', (offset) => {
    expect(parse(`table=items&offset=${offset}&live=true&live_sse=true`)).toMatchObject({ live: true, liveSse: true })
  })

  it('reads 0_inf and large tx offsets exactly', () => {
    expect(parse(`table=items&offset=0_inf&handle=${HANDLE}`).offset).toEqual({ tx: 0n, op: 4294967295 })
    expect(parse(`table=items&offset=18446744073709551615_0&handle=${HANDLE}`).offset).toEqual({
      tx: 18446744073709551615n,
      op: 0,
    })
  })

  it('reads offset now', () => {
    expect(parse('table=items&offset=now').offset).toBe('now')
  })

  it.each(['-1', 'now'])('ignores the handle with offset %s, even a malformed one (a cache buster)', (offset) => {
    expect(parse(`table=items&offset=${offset}&handle=${HANDLE}`).handle).toBeUndefined()
    expect(parse(`table=items&offset=${offset}&handle=not-a-handle`).handle).toBeUndefined()
  })

  it('treats any live value but false as true', () => {
    const base = `table=items&offset=5_0&handle=${HANDLE}`
    expect(parse(`${base}&live=true`).live).toBe(true)
    expect(parse(`${base}&live=1`).live).toBe(true)
    expect(parse(`${base}&live=`).live).toBe(true)
    expect(parse(`${base}&live=false`).live).toBe(false)
    expect(parse(base).live).toBe(false)
    expect(parse('table=items&offset=-1&live=false').live).toBe(false)
  })

  it.each([
    ['app."my table"', { schema: 'app', name: 'my table' }],
    ['App.Items', { schema: 'app', name: 'items' }],
    ['"Items"', { schema: 'public', name: 'Items' }],
  ])('parses the table %s', (table, expected) => {
    expect(parse(`table=${encodeURIComponent(table)}&offset=-1`).definition.table).toEqual(expected)
  })

  it('reads replica and log', () => {
    expect(parse('table=items&offset=-1&replica=full&log=changes_only').definition).toEqual({
      table: { schema: 'public', name: 'items' },
      replica: 'full',
      log: 'changes_only',
    })
    expect(parse('table=items&offset=-1&replica=default&log=full').definition).toMatchObject({
      replica: 'default',
      log: 'full',
    })
  })

  it('ignores unknown parameters', () => {
    expect(parse('table=items&offset=-1&cache-buster=abc&expired_handle=x&foo=bar').definition.table.name).toBe('items')
  })
})

describe('parseShapeRequest: rejected', () => {
  it('names both missing required parameters', () => {
    expect(errorsOf('')).toEqual({ table: ['is required'], offset: ['is required'] })
  })

  it('treats empty values as missing', () => {
    expect(errorsOf('table=&offset=')).toEqual({ table: ['is required'], offset: ['is required'] })
  })

  it('requires offset', () => {
    expect(errorsOf('table=items')).toEqual({ offset: ['is required'] })
  })

  it('requires table', () => {
    expect(errorsOf('offset=-1')).toEqual({ table: ['is required'] })
  })

  it('carries the table parser reason', () => {
    const errors = errorsOf('table=a.b.c&offset=-1')
    expect(Object.keys(errors)).toEqual(['table'])
    expect(errors['table']?.[0]).toContain('more than two parts')
  })

  it.each(['01_0', '1_', 'now2', '1.5_0', 'latest', '18446744073709551616_0', '1_4294967296'])(
    'rejects offset %j',
    (offset) => {
      expect(errorsOf(`table=items&offset=${encodeURIComponent(offset)}&handle=${HANDLE}`)).toEqual({
        offset: [OFFSET_REASON],
      })
    },
  )

  it('requires a handle for other offsets', () => {
    expect(errorsOf('table=items&offset=5_0')).toEqual({ handle: ['is required unless offset is -1 or now'] })
    expect(errorsOf('table=items&offset=0_0&handle=')).toEqual({
      handle: ['is required unless offset is -1 or now'],
    })
  })

  it('takes a malformed handle as one no shape has (a 409 with the current handle follows, as in Electric)', () => {
    expect(parse('table=items&offset=5_0&handle=nope').handle).toBe(FOREIGN_HANDLE)
    expect(parse('table=items&offset=5_0&handle=3F2A9C1B-1').handle).toBe(FOREIGN_HANDLE)
  })

  it.each(['-1', 'now'])('rejects live with offset %s', (offset) => {
    expect(errorsOf(`table=items&offset=${offset}&live=true`)).toEqual({
      live: ['cannot be used with offset -1 or now'],
    })
  })

  it('rejects unknown replica and log values', () => {
    expect(errorsOf('table=items&offset=-1&replica=partial')).toEqual({ replica: ['must be one of default, full'] })
    expect(errorsOf('table=items&offset=-1&log=some')).toEqual({ log: ['must be one of full, changes_only'] })
    expect(errorsOf('table=items&offset=-1&replica=FULL&log=')).toEqual({
      replica: ['must be one of default, full'],
      log: ['must be one of full, changes_only'],
    })
  })

  it('reads where with params into canonical form, and columns sorted', () => {
    const request = parse('table=items&offset=-1&where=ID%20%3D%20%241%20and%20(title%20LIKE%20%242)&params[1]=7&params[2]=a%25&columns=title,%22Has,Comma%22,id')
    expect(request.definition).toEqual({
      table: { schema: 'public', name: 'items' },
      replica: 'default',
      log: 'full',
      where: `(("id" = '7') AND ("title" LIKE 'a%'))`,
      columns: ['Has,Comma', 'id', 'title'],
    })
  })

  it('rejects bad where, missing params and bad columns before anything else runs', () => {
    expect(errorsOf('table=items&offset=-1&where=')).toEqual({ where: ['must not be empty'] })
    expect(errorsOf('table=items&offset=-1&where=id%3D%241')).toEqual({ 'params[1]': ['is missing: the where clause uses $1'] })
    expect(errorsOf('table=items&offset=-1&where=1%3D1%3B%20drop%20table%20items')).toEqual({ where: ['At location 3: must be a single expression, without ";"'] })
    expect(errorsOf('table=items&offset=-1&columns=id,')).toEqual({ columns: ['expected a column name at position 4 of "id," (quote names with other characters in double quotes)'] })
    expect(errorsOf('table=items&offset=-1&columns=%22id')).toEqual({ columns: [String.raw`unterminated quoted name in "\"id"`] })
  })

  it('reports every problem at once', () => {
    expect(errorsOf('offset=5_0&handle=bad&live=true&replica=x&where=(select%201)')).toEqual({
      table: ['is required'],
      replica: ['must be one of default, full'],
      where: ['At location 0: only IN (SELECT …) subqueries are supported (not EXISTS, scalar subqueries or ANY/ALL with an operator)'],
    })
  })
})
