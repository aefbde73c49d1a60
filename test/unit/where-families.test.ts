/**
 * Clients' wheres that differ only in their constants share one parse (docs/ARCHITECTURE.md I31),
 * and what a text gets from its family is exactly what parsing it gives: the same tree, the same
 * positions (in bytes), the same 400.
 */
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { InvalidRequestError } from '../../src/errors.js'
import { canonicalWhere } from '../../src/shapes/where/canonical.js'
import { compileParsedWhere, tablesOfParsedWhere } from '../../src/shapes/where/compile-where.js'
import { parseWhere, type ParamReader } from '../../src/shapes/where/parse-where.js'
import type { WhereNode } from '../../src/shapes/where/where-ast.js'
import { WhereFamilies } from '../../src/shapes/where/where-families.js'
import { TABLES, TASKS } from '../support/subquery-tables.js'

const noParams = () => undefined

/** The tree, or the 400's errors. */
function outcome(parse: () => unknown): unknown {
  try {
    return parse()
  } catch (error) {
    expect(error).toBeInstanceOf(InvalidRequestError)
    return (error as InvalidRequestError).errors
  }
}

const quoted = (s: string) => `'${s.replaceAll("'", "''")}'`
const int = fc.oneof(fc.integer({ min: 0, max: 20 }), fc.integer({ min: 0, max: 2 ** 31 - 1 }), fc.constantFrom('007', '1_000', '99999999999', '123456789', '1234567890', '0')).map(String)
const text = fc.oneof(
  fc.constantFrom('', "it's", "''", '"q"', '5', '-3', 'a\\b', 'é', '日本', '😀x', 'a\nb', '--', '/*', ';', '(((', '\u0001', 'select'),
  fc.string({ maxLength: 6 }).filter((s) => !s.includes('\u0000')),
  fc.string({ unit: 'grapheme', maxLength: 4 }),
)
const space = fc.constantFrom(' ', '', '  ', '\t', '\n')

/** Families as clients write them, with constants that the lexer may read another way, and some a parse refuses. */
const WHERES: fc.Arbitrary<string> = fc.oneof(
  int.map((k) => `user_id = ${k}`),
  fc.tuple(space, int).map(([s, k]) => `user_id=${s}${k}`),
  int.map((k) => `user_id = -${k}`),
  int.map((k) => `USER_ID in (${k}, 2, ${k})`),
  fc.tuple(text, int).map(([s, k]) => `owner = ${quoted(s)} AND user_id <> ${k}`),
  fc.tuple(space, text).map(([s, t]) => `owner = E${quoted(t)} or${s}owner is null`),
  fc.tuple(text, text).map(([a, b]) => `owner in (${quoted(a)}, ${quoted(b)})`),
  fc.tuple(text, text, space).map(([a, b, s]) => `owner = ${quoted(a)}${s}${quoted(b)}`),
  fc.tuple(text, int).map(([a, k]) => `"ow""ner" = ${quoted(a)} and not (id between ${k} and 10)`),
  fc.tuple(int, text).map(([k, a]) => `int4 ${quoted(String(k))} = user_id AND owner LIKE ${quoted(a)}`),
  fc.tuple(int, int).map(([a, b]) => `id = ${a}.${b} OR id = .${b} OR id = ${a}e2`),
  int.map((k) => `user_id = ${k} -- ${k}`),
  int.map((k) => `user_id = $1 AND id = ${k}`),
  int.map((k) => `user_id = ${k} AND x(${k})`),
  int.map((k) => `user_id = ${k} AND id IN (SELECT id FROM items WHERE user_id = ${k})`),
  fc.tuple(text, int).map(([a, k]) => `${quoted(a)} = owner AND ${k} = id AND TRUE AND owner IS NOT NULL`),
)

describe('WhereFamilies (docs/ARCHITECTURE.md I31)', () => {
  it('gives every text what parsing it gives', () => {
    fc.assert(
      fc.property(fc.array(WHERES, { minLength: 1, maxLength: 40 }), (texts) => {
        const families = new WhereFamilies()
        for (const where of texts) expect(outcome(() => families.parse(where, noParams))).toEqual(outcome(() => parseWhere(where, noParams)))
      }),
      { numRuns: 500 },
    )
  })

  it('parses one text per family', () => {
    const families = new WhereFamilies()
    for (let user = 0; user < 1_000; user++) families.parse(`user_id = ${user}`, noParams)
    for (const owner of ['a', "it's", 'é', '日本', '']) families.parse(`owner = ${quoted(owner)} AND user_id <> 3`, noParams)
    expect(families.parses).toBe(2)
  })

  it('keeps at most the families it is given, the oldest going first', () => {
    const families = new WhereFamilies(2)
    for (const where of ['a = 1', 'b = 1', 'a = 2', 'c = 1', 'b = 2', 'a = 3']) families.parse(where, noParams)
    expect(families.parses).toBe(4)
  })

  it('parses the text again when its constants make it too long, and says so', () => {
    const families = new WhereFamilies()
    families.parse(`owner = 'x'`, noParams)
    const long = `owner = ${quoted('x'.repeat(20_000))}`
    expect(outcome(() => families.parse(long, noParams))).toEqual(outcome(() => parseWhere(long, noParams)))
    expect(families.parses).toBe(2)
  })

  it('gives a text with a subquery or parameters what parsing it with those values gives', () => {
    const value = fc.constantFrom('u1', 'u2', "it's", '3', '')
    const where = fc.constantFrom(
      `project_id IN (SELECT project_id FROM memberships WHERE user_id = $1)`,
      `project_id IN (SELECT project_id FROM memberships WHERE user_id = $2) OR done = $1`,
      `project_id = $1`,
      `project_id IN (SELECT project_id FROM memberships WHERE user_id = 'u1')`,
      `project_id IN (SELECT project_id FROM memberships WHERE user_id = $3)`,
    )
    fc.assert(
      fc.property(fc.array(fc.tuple(where, fc.option(value, { nil: undefined }), value), { minLength: 1, maxLength: 40 }), (asked) => {
        const families = new WhereFamilies()
        for (const [text, first, second] of asked) {
          const params: ParamReader = (n) => (n === 1 ? first : n === 2 ? second : undefined)
          expect(outcome(() => families.parse(text, params))).toEqual(outcome(() => parseWhere(text, params)))
        }
      }),
      { numRuns: 300 },
    )
  })

  it('parses a text with a subquery once for each value of its parameters', () => {
    const families = new WhereFamilies()
    const where = `project_id IN (SELECT project_id FROM memberships WHERE user_id = $1)`
    for (let poll = 0; poll < 10; poll++) for (const user of ['u1', 'u2', 'u3']) families.parse(where, (n) => (n === 1 ? user : undefined))
    expect(families.parses).toBe(3)
  })

  it('keeps at most the exact texts it is given, the least recently asked for going first', () => {
    const families = new WhereFamilies(2, 2)
    const ask = (user: string) => families.parse(`project_id IN (SELECT project_id FROM memberships WHERE user_id = $1)`, () => user)
    for (const user of ['a', 'b', 'a', 'c', 'a', 'b']) ask(user)
    // a, b, (a kept), c (b out), (a kept), b (c out).
    expect(families.parses).toBe(4)
  })

  it('gives out trees that nothing the request path does changes', () => {
    const families = new WhereFamilies()
    const wheres = [
      `project_id IN (SELECT project_id FROM memberships WHERE user_id = $1)`,
      `(project_id, id) IN (SELECT project_id, id FROM memberships WHERE user_id = $1 AND project_id IN (SELECT id FROM tasks WHERE NOT done)) AND NOT done`,
      `project_id = 7 AND id IN (1, 2, 3)`,
      `project_id = 8 AND id IN (1, 2, 3)`,
    ]
    for (const where of [...wheres, ...wheres]) {
      const tree = deepFreeze(families.parse(where, () => 'u1'))
      canonicalWhere(tree)
      tablesOfParsedWhere(tree)
      const compiled = compileParsedWhere(tree, canonicalWhere(tree), TASKS, TABLES)
      compiled.matches({ id: '1', project_id: '7', done: 'f' })
    }
    expect(families.parses).toBe(3)
  })
})

/** Freezes every object of the tree: a write to it then throws (modules are strict). */
function deepFreeze(node: WhereNode): WhereNode {
  const freeze = (value: unknown): void => {
    if (value === null || typeof value !== 'object' || Object.isFrozen(value)) return
    Object.freeze(value)
    for (const child of Object.values(value)) freeze(child)
  }
  freeze(node)
  return node
}
