/**
 * `numeric` division and modulo in the where evaluator against PostgreSQL itself: the same
 * quotient to the same scale (PostgreSQL's `select_div_scale`, rounding half away from zero),
 * the same remainder, the same special values and the same division-by-zero errors.
 */
import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { divideDecimals, formatDecimal, moduloDecimals, parseDecimal } from '../src/shapes/where/decimal.js'
import { createTestDatabase, type TestDatabase } from './support/database.js'

let db: TestDatabase

beforeAll(async () => {
  db = await createTestDatabase()
})

afterAll(async () => {
  await db?.drop()
})

const numericText = fc.oneof(
  fc.constantFrom('0', '1', '-1', '3', '7', '0.1', '0.003', '1.50', '-2.5', '10000', '9999.9999', '123456789012345678901234567890', '0.000000000001', 'NaN', 'Infinity', '-Infinity'),
  fc.tuple(fc.bigInt({ min: -(10n ** 25n), max: 10n ** 25n }), fc.integer({ min: 0, max: 20 })).map(([digits, scale]) => {
    const negative = digits < 0n
    const text = (negative ? -digits : digits).toString().padStart(scale + 1, '0')
    const body = scale === 0 ? text : `${text.slice(0, -scale)}.${text.slice(-scale)}`
    return negative ? `-${body}` : body
  }),
)

function ours(op: '/' | '%', a: string, b: string): string {
  try {
    const x = parseDecimal(a)!
    const y = parseDecimal(b)!
    return formatDecimal(op === '/' ? divideDecimals(x, y) : moduloDecimals(x, y))
  } catch (error) {
    return `error: ${(error as Error).message}`
  }
}

async function theirs(op: '/' | '%', a: string, b: string): Promise<string> {
  try {
    const { rows } = await db.pool.query<{ r: string }>(`SELECT ($1::numeric ${op} $2::numeric)::text AS r`, [a, b])
    return rows[0]!.r
  } catch (error) {
    return `error: ${(error as Error).message}`
  }
}

describe('numeric / and % against PostgreSQL', () => {
  it('agree on edge cases and 1,000 random pairs', async () => {
    const pairs: [string, string][] = [
      ['1', '3'], ['2', '3'], ['-2', '3'], ['1', '7'], ['10', '4'], ['1', '0'], ['0', '0'], ['5.5', '0.0'],
      ['1', '10000'], ['9999', '10000'], ['10000', '9999'], ['0.0001', '3'], ['123456789012345678901234567890', '7'],
      ['1.50', '2'], ['-7', '2'], ['7', '-2'], ['Infinity', '2'], ['2', 'Infinity'], ['Infinity', '0'], ['NaN', '0'],
      ['Infinity', 'Infinity'], ['-Infinity', '3'], ['0', '-5'],
      ...fc.sample(fc.tuple(numericText, numericText), { numRuns: 1_000, seed: 42 }),
    ]
    const mismatches: string[] = []
    for (const [a, b] of pairs) {
      for (const op of ['/', '%'] as const) {
        const expected = await theirs(op, a, b)
        const actual = ours(op, a, b)
        const agree = expected.startsWith('error') ? actual.startsWith('error') : actual === expected
        if (!agree) mismatches.push(`${a} ${op} ${b}: PostgreSQL ${expected}, Sluice ${actual}`)
      }
    }
    expect(mismatches).toEqual([])
  })
})
