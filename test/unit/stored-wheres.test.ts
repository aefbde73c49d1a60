import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { InvalidRequestError } from '../../src/errors.js'
import type { TableInfo } from '../../src/pg/introspect.js'
import { column, itemsTable } from '../support/catalog-table.js'
import { observedWhere } from '../support/observed-where.js'
import { StoredWheres } from '../../src/shapes/stored-wheres.js'
import { canonicalizeWhere, compileWhere, type CompiledWhere, type Row } from '../../src/shapes/where/compile-where.js'

const TABLE: TableInfo = itemsTable([column('id', 'int8'), column('user_id', 'int4'), column('owner', 'text'), column('price', 'numeric'), column('tags', 'text', { dims: 1 }), column('uid', 'uuid'), column('at', 'timestamptz')])

const ROWS: Row[] = [
  { id: '1', user_id: '7', owner: "it's", price: '1.50', tags: '{a,b}', uid: '00000000-0000-0000-0000-000000000001', at: '2024-01-01 00:00:00+00' },
  { id: '-3', user_id: '-3', owner: 'x', price: '100000', tags: '{}', uid: null, at: null },
  { id: '5', user_id: '2147483647', owner: '"q"', price: '-0.5', tags: null, uid: '00000000-0000-0000-0000-000000000002', at: '1999-12-31 23:59:59+00' },
]

const observed = (where: CompiledWhere) => observedWhere(where, ROWS)

const int = fc.oneof(fc.integer({ min: -10, max: 10 }), fc.integer(), fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n })).map(String)
const decimal = fc.oneof(fc.constantFrom('1.5', '1.50', '0.000', '-0.5', '1e5', '2.5e-3', '.5', '12345678901234567890.123'), fc.double({ noNaN: true, noDefaultInfinity: true, min: -1e6, max: 1e6 }).map(String).filter((t) => !t.includes('e')))
const text = fc.oneof(fc.constantFrom('', "it's", "''", '"q"', '5', '-3', 'a\\b', 'E\'x', 'ok'), fc.string({ maxLength: 6 }).filter((s) => !s.includes('\u0000')))
const uuid = fc.uuid()

/** Families of wheres that differ in their constants, as per-user shapes do. */
const WHERES: fc.Arbitrary<string> = fc.oneof(
  int.map((k) => `user_id = ${k}`),
  int.map((k) => `id = ${k}`),
  decimal.map((d) => `id = ${d}`),
  int.map((k) => `user_id = '${k}'`),
  text.map((s) => `owner = '${s.replaceAll("'", "''")}'`),
  fc.tuple(decimal, text, text).map(([d, a, b]) => `price > ${d} AND owner IN ('${a.replaceAll("'", "''")}', '${b.replaceAll("'", "''")}')`),
  fc.array(int, { minLength: 1, maxLength: 4 }).map((ks) => `user_id IN (${ks.join(', ')})`),
  fc.tuple(int, int).map(([a, b]) => `id BETWEEN ${a} AND ${b} OR owner IS NULL`),
  fc.tuple(text, int).map(([s, k]) => `tags @> ARRAY['${s.replaceAll("'", "''")}', NULL] AND CAST(price AS int4) <> ${k}`),
  fc.tuple(int, decimal).map(([k, d]) => `(- price) * ${k} <> ALL('{1}') AND price::float8 < ${d}`),
  uuid.map((u) => `uid = '${u}'`),
  fc.constantFrom(`uid = 'not a uuid'`, `user_id = 99999999999`, `at > '2024-01-01'`, `at > 'never'`, `owner LIKE 'a%' AND user_id = -3`, `user_id = 1 AND TRUE`),
)

/** The compiled where, or the error a request would get. */
function outcome(compile: () => CompiledWhere): unknown {
  try {
    return observed(compile())
  } catch (error) {
    expect(error).toBeInstanceOf(InvalidRequestError)
    return (error as InvalidRequestError).errors
  }
}

describe('StoredWheres (docs/ARCHITECTURE.md I31)', () => {
  it('compiles every stored where exactly as compileWhere does', () => {
    fc.assert(
      fc.property(fc.array(WHERES, { minLength: 1, maxLength: 30 }), (sources) => {
        const wheres = new StoredWheres()
        for (const source of sources) {
          let canonical: string
          try {
            canonical = canonicalizeWhere(source)
          } catch {
            continue
          }
          expect(outcome(() => wheres.compile(canonical, TABLE))).toEqual(outcome(() => compileWhere(canonical, () => undefined, TABLE)))
        }
      }),
      { numRuns: 300 },
    )
  })

  it('parses one where per spelling with the constants left out', () => {
    const wheres = new StoredWheres()
    for (let user = -500; user < 500; user++) wheres.compile(canonicalizeWhere(`user_id = ${user}`), TABLE)
    for (const owner of ['a', "it's", '7', '']) wheres.compile(canonicalizeWhere(`owner = '${owner.replaceAll("'", "''")}' AND price > 1.5`), TABLE)
    expect(wheres.parses).toBe(2)
  })

  it('keeps at most the families it is given, the oldest going first', () => {
    const wheres = new StoredWheres(2)
    const families = [(k: number) => `user_id = ${k}`, (k: number) => `id = ${k}`, (k: number) => `owner = '${k}'`]
    for (const family of [0, 1, 0, 1, 2, 1, 2, 0]) wheres.compile(canonicalizeWhere(families[family]!(family)), TABLE)
    // The third family pushes out the first, which is parsed again when it comes back.
    expect(wheres.parses).toBe(4)
  })

  it('parses a where whose literals its spelling hides, rather than take the shared tree', () => {
    // PostgreSQL keeps `2_000_000_000_000` as written (binding refuses it): the shared tree of
    // `1_000_000_000_000` with the literal `2` put in would render `("id" = 2)`, so it is not taken.
    const wheres = new StoredWheres()
    for (const k of [1, 2, 3]) {
      const canonical = canonicalizeWhere(`id = ${k}_000_000_000_000`)
      expect(outcome(() => wheres.compile(canonical, TABLE))).toEqual(outcome(() => compileWhere(canonical, () => undefined, TABLE)))
    }
    expect(wheres.parses).toBe(3)
  })

  it('does not mistake a literal of another kind at the same place for the shared one', () => {
    const wheres = new StoredWheres()
    const spellings = [`("user_id" = 1)`, `("user_id" = 1.5)`, `("user_id" = '1')`, `("user_id" = -1)`, `("user_id" = 1e3)`]
    for (const canonical of spellings) {
      expect(canonicalizeWhere(canonical)).toBe(canonical)
      expect(observed(wheres.compile(canonical, TABLE))).toEqual(observed(compileWhere(canonical, () => undefined, TABLE)))
    }
  })
})
