/**
 * Oracle property test of the where compiler: for random rows and random expressions of the
 * supported grammar, the TypeScript evaluator must give PostgreSQL's answer (true, false,
 * null, or an error) for the same expression on the same row — both the client's original
 * text and the SQL Sluice rebuilds from it. The database uses the C collation, which is what
 * Sluice pins text ordering, ILIKE, lower() and upper() to.
 */
import fc from 'fast-check'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { inject } from 'vitest'
import { loadTableInfo, type TableInfo } from '../src/pg/introspect.js'
import { compileWhere, EvaluationError } from '../src/shapes/where/compile-where.js'

const COLUMNS = [
  ['i', 'int4'],
  ['b8', 'int8'],
  ['n', 'numeric'],
  ['f', 'float8'],
  ['s', 'text'],
  ['flag', 'bool'],
  ['d', 'date'],
  ['ts', 'timestamptz'],
  ['ia', 'int4[]'],
  ['ta', 'text[]'],
] as const

type Row = Record<string, string | null>
type Outcome = boolean | null | 'error'

let admin: pg.Client
let client: pg.Client
let table: TableInfo
const dbName = `sluice_where_oracle_${process.pid}`

beforeAll(async () => {
  const url = inject('databaseUrl')
  admin = new pg.Client({ connectionString: url })
  await admin.connect()
  await admin.query(`CREATE DATABASE ${dbName} TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C'`)
  const dbUrl = new URL(url)
  dbUrl.pathname = `/${dbName}`
  client = new pg.Client({ connectionString: dbUrl.toString() })
  await client.connect()
  await client.query(`SET TimeZone = 'UTC'`)
  await client.query(`CREATE TABLE t (id int PRIMARY KEY, ${COLUMNS.map(([n, t]) => `${n} ${t}`).join(', ')})`)
  // The rows under test live in a real table so the planner cannot constant-fold their values.
  await client.query(`CREATE TABLE r (k int PRIMARY KEY, ${COLUMNS.map(([n, t]) => `${n} ${t}`).join(', ')})`)
  table = (await loadTableInfo(client, { schema: 'public', name: 't' }))!
})

afterAll(async () => {
  await client?.end()
  await admin?.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`)
  await admin?.end()
})

// --- rows ---------------------------------------------------------------------------------
/**
 * A fixed seed keeps CI repeatable; explore with WHERE_ORACLE_SEED=<n> (and WHERE_ORACLE_RUNS):
 * random seeds found the NULL-folding and numeric cases this test now pins.
 */
const DEFAULT_SEED = 20261126

const maybe = <T>(a: fc.Arbitrary<T>) => fc.option(a, { nil: null, freq: 5 })
const int4 = fc.oneof(fc.integer({ min: -5, max: 5 }), fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }))
const int8 = fc.oneof(fc.bigInt({ min: -5n, max: 5n }), fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }))
const numericText = fc.oneof(
  fc.integer({ min: -5, max: 5 }).map(String),
  fc.tuple(fc.bigInt({ min: -(10n ** 30n), max: 10n ** 30n }), fc.integer({ min: 0, max: 25 })).map(([d, s]) => {
    const neg = d < 0n
    let t = (neg ? -d : d).toString().padStart(s + 1, '0')
    if (s > 0) t = `${t.slice(0, -s)}.${t.slice(-s)}`
    return neg ? `-${t}` : t
  }),
  fc.constantFrom('1.50', '1.5', '0.000', '-0.5', '2.50000000000000000001'),
)
const floatText = fc.oneof(fc.double({ noNaN: true, noDefaultInfinity: true }).map((x) => String(Object.is(x, -0) ? 0 : x)), fc.constantFrom('1.5', '-2', '0.1', '1e300', 'NaN', 'Infinity'))
const textValue = fc.oneof(fc.constantFrom('', 'a', 'A', 'abc', 'ABC', 'a%b', 'a_b', 'é', 'É', 'x y', 'Zz', '💡', 'ab\\c'), fc.string({ maxLength: 6 }), fc.string({ unit: 'grapheme', maxLength: 4 }))
const dateText = fc.integer({ min: -700_000, max: 2_900_000 }).map((days) => new Date(days * 86_400_000).toISOString().slice(0, 10))
const tsText = fc.integer({ min: -2_000_000_000, max: 4_000_000_000 }).map((s) => new Date(s * 1000).toISOString().replace('T', ' ').replace('.000Z', '+00'))
const quoteElement = (s: string) => `"${s.replace(/["\\]/g, '\\$&')}"`
const intArray = fc.array(fc.option(fc.integer({ min: -3, max: 3 }), { nil: null, freq: 6 }), { maxLength: 4 }).map((a) => `{${a.map((x) => (x === null ? 'NULL' : String(x))).join(',')}}`)
const textArray = fc.array(fc.option(fc.constantFrom('a', 'b', 'A', '', 'x y'), { nil: null, freq: 6 }), { maxLength: 4 }).map((a) => `{${a.map((x) => (x === null ? 'NULL' : quoteElement(x))).join(',')}}`)

const rowArb: fc.Arbitrary<Row> = fc.record({
  i: maybe(int4.map(String)),
  b8: maybe(int8.map(String)),
  n: maybe(numericText),
  f: maybe(floatText),
  s: maybe(textValue),
  flag: maybe(fc.constantFrom('t', 'f')),
  d: maybe(dateText),
  ts: maybe(tsText),
  ia: maybe(intArray),
  ta: maybe(textArray),
})

// --- expressions --------------------------------------------------------------------------
const sqlString = (s: string) => `'${s.replace(/'/g, "''")}'`
const intLit = fc.oneof(fc.integer({ min: -10, max: 10 }), int4).map(String)
const numLit = fc.oneof(numericText.filter((t) => !t.startsWith('-')), fc.constantFrom('1.5', '0.1', '12345678901234567890.123456789'))

const { expr: bool } = fc.letrec<{ int: string; num: string; float: string; text: string; date: string; expr: string }>((tie) => ({
  int: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.constantFrom('i', 'b8'),
    intLit,
    fc.tuple(tie('int'), fc.constantFrom('+', '-', '*', '/', '%'), tie('int')).map(([a, op, b]) => `(${a} ${op} ${b})`),
    tie('int').map((a) => `abs(${a})`),
    tie('text').map((a) => `length(${a})`),
    tie('num').map((a) => `${a}::int8`),
  ),
  num: fc.oneof(
    { depthSize: 'small' },
    fc.constant('n'),
    numLit,
    tie('int'),
    fc.tuple(tie('num'), fc.constantFrom('+', '-', '*', '/', '%'), tie('num')).map(([a, op, b]) => `(${a} ${op} ${b})`),
    tie('num').map((a) => `abs(${a})`),
    tie('num').map((a) => `(-${a})`),
  ),
  float: fc.oneof(
    { depthSize: 'small' },
    fc.constant('f'),
    fc.constantFrom("'1.5'::float8", "'-0.25'::float8", "'NaN'::float8", "'Infinity'::float8"),
    tie('num').map((a) => `${a}::float8`),
    fc.tuple(tie('float'), fc.constantFrom('+', '-', '*', '/'), tie('float')).map(([a, op, b]) => `(${a} ${op} ${b})`),
  ),
  text: fc.oneof(
    { depthSize: 'small' },
    fc.constant('s'),
    textValue.map(sqlString),
    tie('text').map((a) => `lower(${a})`),
    tie('text').map((a) => `upper(${a})`),
    fc.tuple(tie('text'), tie('text')).map(([a, b]) => `(${a} || ${b})`),
    tie('int').map((a) => `(${a})::text`),
    tie('num').map((a) => `(${a})::text`),
    fc.tuple(tie('text'), textValue).map(([a, b]) => `coalesce(${a}, ${sqlString(b)})`),
  ),
  date: fc.oneof(
    fc.constant('d'),
    dateText.map((t) => `'${t}'::date`),
    fc.tuple(fc.constant('d'), fc.constantFrom('+', '-'), fc.integer({ min: -1000, max: 1000 })).map(([a, op, b]) => `(${a} ${op} ${b})`),
  ),
  expr: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.tuple(tie('int'), cmp(), tie('int')).map(([a, op, b]) => `${a} ${op} ${b}`),
    fc.tuple(tie('num'), cmp(), tie('num')).map(([a, op, b]) => `${a} ${op} ${b}`),
    fc.tuple(tie('float'), cmp(), fc.oneof(tie('float'), tie('num'))).map(([a, op, b]) => `${a} ${op} ${b}`),
    fc.tuple(tie('text'), cmp(), tie('text')).map(([a, op, b]) => `${a} ${op} ${b}`),
    fc.tuple(tie('date'), cmp(), fc.oneof(tie('date'), tsText.map((t) => `'${t}'::timestamptz`))).map(([a, op, b]) => `${a} ${op} ${b}`),
    fc.tuple(fc.constant('ts'), cmp(), fc.oneof(tsText.map(sqlString), tie('date'))).map(([a, op, b]) => `${a} ${op} ${b}`),
    fc.tuple(tie('text'), fc.constantFrom('LIKE', 'NOT LIKE', 'ILIKE', 'NOT ILIKE'), fc.constantFrom("'a%'", "'%b%'", "'_'", "'A_C'", "'%'", "''", "'\\%'", "'é%'", 's')).map(([a, op, b]) => `${a} ${op} ${b}`),
    fc.tuple(tie('int'), fc.constantFrom('IN', 'NOT IN'), fc.array(fc.oneof(intLit, fc.constant('NULL'), numLit), { minLength: 1, maxLength: 4 })).map(([a, op, l]) => `${a} ${op} (${l.join(', ')})`),
    fc.tuple(tie('text'), fc.constantFrom('IN', 'NOT IN'), fc.array(textValue.map(sqlString), { minLength: 1, maxLength: 3 })).map(([a, op, l]) => `${a} ${op} (${l.join(', ')})`),
    fc.tuple(tie('num'), fc.constantFrom('BETWEEN', 'NOT BETWEEN', 'BETWEEN SYMMETRIC'), tie('num'), tie('num')).map(([a, op, l, h]) => `${a} ${op} ${l} AND ${h}`),
    fc.tuple(fc.oneof(tie('int'), tie('text'), tie('num')), fc.constantFrom('IS NULL', 'IS NOT NULL')).map(([a, t]) => `${a} ${t}`),
    fc.tuple(tie('expr'), fc.constantFrom('IS TRUE', 'IS NOT TRUE', 'IS FALSE', 'IS NOT FALSE', 'IS UNKNOWN', 'IS NOT UNKNOWN')).map(([a, t]) => `(${a}) ${t}`),
    fc.tuple(tie('int'), fc.constantFrom('IS DISTINCT FROM', 'IS NOT DISTINCT FROM'), tie('int')).map(([a, op, b]) => `${a} ${op} ${b}`),
    fc.tuple(tie('int'), fc.constantFrom('= ANY', '<> ALL', '< ANY'), fc.constantFrom('(ia)', "('{1,2,NULL}')", "(ARRAY[1, 2])", "('{}')")).map(([a, op, b]) => `${a} ${op}${b}`),
    fc.tuple(fc.constant('ia'), fc.constantFrom('@>', '<@', '&&', '='), fc.oneof(intArray.map(sqlString), fc.constant('ia'))).map(([a, op, b]) => `${a} ${op} ${b}`),
    fc.tuple(fc.constant('ta'), fc.constantFrom('@>', '<@', '&&'), fc.constantFrom("ARRAY['a']", "'{a,b}'", "'{\"\"}'", "ARRAY['A', 'x y']")).map(([a, op, b]) => `${a} ${op} ${b}`),
    fc.constantFrom('flag', 'NOT flag', 'flag = true', 'flag IS NOT FALSE', 'true', 'NULL::bool'),
    fc.tuple(tie('expr'), fc.constantFrom('AND', 'OR'), tie('expr')).map(([a, op, b]) => `(${a}) ${op} (${b})`),
    tie('expr').map((a) => `NOT (${a})`),
  ),
}))

function cmp() {
  return fc.constantFrom('=', '<>', '<', '<=', '>', '>=')
}

// --- the oracle -----------------------------------------------------------------------------
async function loadRows(rows: readonly Row[]): Promise<void> {
  await client.query('TRUNCATE r')
  for (const [k, row] of rows.entries()) {
    const values = COLUMNS.map(([name]) => row[name] ?? null)
    await client.query(`INSERT INTO r VALUES ($1, ${COLUMNS.map((_, i) => `$${i + 2}`).join(', ')})`, [k, ...values])
  }
}

/** PostgreSQL's answer for each loaded row, or 'error'. */
async function postgresAnswers(sql: string, count: number): Promise<Outcome[]> {
  const answers: Outcome[] = []
  for (let k = 0; k < count; k++) {
    try {
      await client.query('SAVEPOINT s')
      const result = await client.query<{ r: boolean | null }>(`SELECT (${sql}) AS r FROM r WHERE k = $1`, [k])
      answers.push(result.rows[0]!.r)
      await client.query('RELEASE SAVEPOINT s')
    } catch {
      await client.query('ROLLBACK TO SAVEPOINT s')
      answers.push('error')
    }
  }
  return answers
}

/**
 * Where PostgreSQL raises an error any answer is acceptable (it may evaluate or fold AND/OR
 * arguments in any order); where we raise one, the row counts as not matching, so PostgreSQL
 * must not have said true.
 */
function agrees(ours: Outcome, theirs: Outcome): boolean {
  if (theirs === 'error') return true
  if (ours === 'error') return theirs !== true
  return ours === theirs
}

function evaluatorAnswer(evaluate: (row: Row) => boolean | null, row: Row): Outcome {
  try {
    return evaluate(row)
  } catch (error) {
    if (error instanceof EvaluationError) return 'error'
    throw error
  }
}

describe('where evaluator agrees with PostgreSQL', () => {
  it('on random expressions and rows', { timeout: 60_000 }, async () => {
    await client.query('BEGIN')
    let compared = 0
    try {
      await fc.assert(
        fc.asyncProperty(bool, fc.array(rowArb, { minLength: 8, maxLength: 8 }), async (where, rows) => {
          let compiled
          await loadRows(rows)
          try {
            compiled = compileWhere(where, () => undefined, table)
          } catch (error) {
            // Outside what the compiler accepts (e.g. an invalid literal): PostgreSQL must reject it too.
            const [answer] = await postgresAnswers(where, 1)
            expect({ where, answer, error: String(error) }).toMatchObject({ answer: 'error' })
            return
          }
          const original = await postgresAnswers(where, rows.length)
          const rebuilt = await postgresAnswers(compiled.sql, rows.length)
          rows.forEach((row, i) => {
            const ours = evaluatorAnswer(compiled.evaluate, row)
            const context = { where, sql: compiled.sql, row, ours, postgres: original[i], rebuilt: rebuilt[i] }
            expect(agrees(ours, original[i]!), JSON.stringify(context)).toBe(true)
            // The snapshot runs the rebuilt SQL: it must agree with the evaluator and the original.
            expect(agrees(ours, rebuilt[i]!), JSON.stringify(context)).toBe(true)
            expect(agrees(rebuilt[i]!, original[i]!), JSON.stringify(context)).toBe(true)
            if (original[i] !== 'error') compared++
          })
        }),
        { numRuns: Number(process.env['WHERE_ORACLE_RUNS'] ?? 300), seed: Number(process.env['WHERE_ORACLE_SEED'] ?? DEFAULT_SEED) },
      )
    } finally {
      await client.query('ROLLBACK')
    }
    expect(compared).toBeGreaterThan(1000)
  })
})
