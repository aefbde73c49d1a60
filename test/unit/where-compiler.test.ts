import { describe, expect, it } from 'vitest'
import { InvalidRequestError } from '../../src/errors.js'
import type { TableInfo } from '../../src/pg/introspect.js'
import { column, itemsTable } from '../support/catalog-table.js'
import { canonicalizeWhere, compileWhere } from '../../src/shapes/where/compile-where.js'

const TABLE: TableInfo = itemsTable([
    column('id', 'int8'),
    column('owner', 'text'),
    column('price', 'numeric'),
    column('tags', 'text', { dims: 1 }),
    column('uid', 'uuid'),
    column('at', 'timestamptz'),
    column('mood', 'mood', { enumLabels: ['sad', 'ok', 'happy'] }),
    column('blob', 'bytea'),
  ])

const params = (values: Record<number, string>) => (n: number) => values[n]

function rejection(where: string, values: Record<number, string> = {}): Readonly<Record<string, readonly string[]>> {
  try {
    compileWhere(where, params(values), TABLE)
  } catch (error) {
    expect(error).toBeInstanceOf(InvalidRequestError)
    return (error as InvalidRequestError).errors
  }
  throw new Error(`expected ${where} to be rejected`)
}

describe('canonical where (shape identity)', () => {
  it.each([
    [`owner = 'a' AND price > 1`, `OWNER='a'   and   ((price > 1))`],
    [`owner = 'a' AND price > 1`, `(owner = 'a') AND (price > 1)`],
    [`owner = $1`, `owner = 'x'`],
    [`a IN (1, 2)`, `a in(1,2)`],
    [`"owner" = 'x'`, `owner = 'x'`],
    [`NOT (x IS NULL)`, `not x is null`],
    [`x BETWEEN 1 AND 2`, `x between 1 and 2`],
    [`a AND (b AND c)`, `(a AND b) AND c`],
    [`lower(owner) LIKE 'a%'`, `LOWER(owner) like 'a%'`],
    [`price::numeric > 1`, `CAST(price AS numeric) > 1`],
    [`id = ANY($1)`, `id = any('{1,2}')`],
  ])('%s ≡ %s', (a, b) => {
    const p = params({ 1: a.includes('ANY') ? '{1,2}' : 'x' })
    expect(canonicalizeWhere(a, p)).toBe(canonicalizeWhere(b, p))
  })

  it.each([
    [`owner = 'a'`, `owner = 'A'`],
    [`owner = 'a' AND price > 1`, `price > 1 AND owner = 'a'`],
    [`"Owner" = 'x'`, `owner = 'x'`],
    [`x = 1`, `x = 1.0`],
  ])('%s ≢ %s', (a, b) => {
    expect(canonicalizeWhere(a)).not.toBe(canonicalizeWhere(b))
  })

  it('is a fixed point: the canonical text parses back to itself', () => {
    for (const where of [`owner = 'it''s' OR price IN (1, 2.5, -3)`, `NOT (tags @> ARRAY['a', NULL]) IS TRUE`, `(- price) * 2 <> ALL('{1}')`]) {
      const canonical = canonicalizeWhere(where)
      expect(canonicalizeWhere(canonical)).toBe(canonical)
    }
  })

  it('inlines params as quoted literals, never as SQL', () => {
    expect(canonicalizeWhere('owner = $1', params({ 1: `x' OR '1'='1` }))).toBe(`("owner" = 'x'' OR ''1''=''1')`)
  })
})

describe('compileWhere', () => {
  it('rebuilds SQL with quoted, cast literals and finds the equality index', () => {
    const compiled = compileWhere(`owner = $1 AND price >= 5`, params({ 1: `o'neil` }), TABLE)
    expect(compiled.sql).toBe(`(("owner" = CAST('o''neil' AS pg_catalog.text)) AND ("price" >= CAST('5' AS pg_catalog.numeric)))`)
    expect(compiled.equalityIndex?.column).toBe('owner')
    expect(compiled.equalityIndex?.values).toEqual([`o'neil`])
  })

  it('indexes IN lists and normalizes numbers and uuids', () => {
    expect(compileWhere(`id IN (1, 2, 3)`, params({}), TABLE).equalityIndex?.values).toEqual(['1', '2', '3'])
    const price = compileWhere(`price = 1.50`, params({}), TABLE).equalityIndex!
    expect(price.values).toEqual(['1.5'])
    expect(price.keyOf('1.500')).toBe('1.5')
    expect(compileWhere(`uid = 'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11'`, params({}), TABLE).equalityIndex?.values).toEqual([
      'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
    ])
    expect(compileWhere(`owner = 'a' OR owner = 'b'`, params({}), TABLE).equalityIndex).toBeUndefined()
    expect(compileWhere(`owner <> 'a'`, params({}), TABLE).equalityIndex).toBeUndefined()
  })

  it('evaluates with three-valued logic and exact numerics', () => {
    const compiled = compileWhere(`price > 0.1 AND (owner LIKE 'a%' OR owner IS NULL)`, params({}), TABLE)
    expect(compiled.evaluate({ price: '0.10000000000000000000001', owner: 'abc' })).toBe(true)
    expect(compiled.evaluate({ price: '0.1', owner: 'abc' })).toBe(false)
    expect(compiled.evaluate({ price: null, owner: 'abc' })).toBe(null)
    expect(compiled.evaluate({ price: null, owner: 'x' })).toBe(false)
    expect(compiled.matches({ price: null, owner: 'abc' })).toBe(false)
    const big = compileWhere(`id = 9007199254740993`, params({}), TABLE)
    expect(big.evaluate({ id: '9007199254740992' })).toBe(false)
    expect(big.evaluate({ id: '9007199254740993' })).toBe(true)
  })

  it('matches an equality-only clause by key exactly as the evaluator does', () => {
    const clauses = [
      `id = 5`,
      `id = 5.0`,
      `id = 5.5`,
      `id IN (1, 5, NULL)`,
      `id = 9007199254740993`,
      `price = 1.50`,
      `price IN (0, 'NaN')`,
      `owner = 'Ab/c'`,
      `owner IN ('a', 'b')`,
      `uid = 'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11'`,
      `mood = 'ok'`,
      `'ok' = mood`,
    ]
    const values: Record<string, (string | null)[]> = {
      id: ['5', '1', '-5', '6', '9007199254740992', '9007199254740993', null],
      price: ['1.5', '1.50', '1.500', '-1.5', '0', '-0.00', 'NaN', '2', null],
      owner: ['Ab/c', 'ab/c', 'a', 'b', '', null],
      uid: ['a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a12', null],
      mood: ['ok', 'sad', 'happy', null],
    }
    let indexOnly = 0
    for (const clause of clauses) {
      const compiled = compileWhere(clause, params({}), TABLE)
      if (compiled.equalityIndex) indexOnly++
      const column = Object.keys(values).find((name) => clause.includes(name))!
      for (const value of values[column]!) {
        expect([clause, value, compiled.matches({ [column]: value })]).toEqual([clause, value, compiled.evaluate({ [column]: value }) === true])
      }
    }
    expect(indexOnly).toBe(clauses.length)
  })

  it('treats run-time errors as not matching', () => {
    const compiled = compileWhere(`id * 2 > 0`, params({}), TABLE)
    expect(compiled.matches({ id: '9223372036854775807' })).toBe(false)
    expect(() => compiled.evaluate({ id: '9223372036854775807' })).toThrow('bigint out of range')
  })
})

// Positions as Electric counts them: a syntax error at PostgreSQL's cursor in
// `SELECT 1 WHERE <clause>` (1-based characters), anything else at the node's byte offset in
// the clause (0-based), in the client's own text rather than its canonical form.
describe('compileWhere rejects', () => {
  it.each([
    ['1 = 1; DROP TABLE items', 'At location 5: must be a single expression, without ";"'],
    ['id = 1 -- x', 'At location 7: comments are not allowed'],
    ['id = 1 /* x */', 'At location 7: comments are not allowed'],
    ['pg_sleep(10) IS NULL', 'At location 0: function pg_sleep() is not supported (supported: lower, upper, length, abs, coalesce)'],
    ['id IN (SELECT id FROM secrets)', 'At location 22: table public.secrets is not available to subqueries'],
    ['EXISTS (SELECT 1 FROM items)', 'At location 0: only IN (SELECT …) subqueries are supported (not EXISTS, scalar subqueries or ANY/ALL with an operator)'],
    [`current_setting('x') = 'y'`, 'At location 0: function current_setting() is not supported (supported: lower, upper, length, abs, coalesce)'],
    ['id = 1 UNION SELECT 1', 'must be a single boolean expression, without FROM, GROUP BY, ORDER BY, LIMIT, UNION or similar clauses (found larg)'],
    ['true ORDER BY 1', 'must be a single boolean expression, without FROM, GROUP BY, ORDER BY, LIMIT, UNION or similar clauses (found sortClause)'],
    ['count(*) > 1', 'At location 0: function count() is not supported (supported: lower, upper, length, abs, coalesce)'],
    ['items.id = 1', "At location 0: columns must be plain column names of the shape's table (no table prefix, no *)"],
    ['id = CURRENT_DATE', 'At location 5: functions of the current time or session (CURRENT_DATE, CURRENT_USER, ...) are not allowed: a shape must be deterministic'],
    ['a x', 'At location 18: syntax error at or near "x"'],
    ['id = 1 +', 'At location 24: syntax error at end of input'],
    [`owner = 'é' x`, 'At location 28: syntax error at or near "x"'],
    ['blob IS NULL', 'At location 0: column "blob" has type bytea, which where does not support'],
    ['nope = 1', 'At location 0: column "nope" does not exist in public.items'],
    ['  (nope   =   1)', 'At location 3: column "nope" does not exist in public.items'],
    [`owner = 'é' AND nope = 1`, 'At location 17: column "nope" does not exist in public.items'],
    ['id = 1 / 0', 'At location 7: division by zero'],
    [`at > 'yesterday'`, `At location 5: invalid timestamptz value "yesterday" (use ISO 8601: YYYY-MM-DD[ HH:MM[:SS[.ffffff]]][Z|±HH[:MM]])`],
    ['owner', 'At location 0: expected bool in the where clause, got text'],
  ])('%s', (where, reason) => {
    expect(rejection(where)).toEqual({ where: [reason] })
  })

  it('names a missing param', () => {
    expect(rejection('owner = $1 OR owner = $2', { 1: 'a' })).toEqual({ 'params[2]': ['is missing: the where clause uses $2'] })
  })

  it('bounds length, depth and parameter numbers before parsing', () => {
    expect(rejection(`owner = '${'x'.repeat(20_000)}'`)).toEqual({ where: ['is longer than 10240 characters'] })
    expect(rejection(`${'('.repeat(65)}true${')'.repeat(65)}`)).toEqual({ where: ['nests parentheses deeper than 64'] })
    expect(rejection(`${'NOT '.repeat(70)}true`)).toEqual({ where: ['is nested deeper than 64 levels'] })
    expect(rejection('owner = $101')).toEqual({ where: ['At location 8: parameter $101 is out of range (1..100)'] })
  })
})

describe('constant folding as PostgreSQL plans it', () => {
  // Found by the oracle: PostgreSQL folds a strict operator with a NULL constant argument to
  // NULL at plan time, so the overflowing cast on the other side is never evaluated.
  it('folds a strict comparison with a NULL constant to NULL without evaluating its other side', () => {
    const compiled = compileWhere('(abs(abs(price))::int8 IN (NULL)) IS NOT FALSE', params({}), TABLE)
    expect(compiled.evaluate({ price: '-9223372036854775808' })).toBe(true)
  })

  it('still evaluates x IN (a, b) at run time, as PostgreSQL does for = ANY', () => {
    const compiled = compileWhere('(abs(price)::int8 IN (NULL, NULL)) IS NOT FALSE', params({}), TABLE)
    expect(compiled.matches({ price: '-9223372036854775808' })).toBe(false)
  })
})
