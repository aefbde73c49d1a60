import { describe, expect, it } from 'vitest'
import { InvalidRequestError } from '../../src/errors.js'
import type { ColumnInfo, TableInfo } from '../../src/pg/introspect.js'
import { canonicalizeWhere, compileWhere, tablesOfWhere, type CompiledWhere, type SubqueryTables } from '../../src/shapes/where/compile-where.js'
import { TupleOverlay, ValueSet, tupleKey, type TupleParts } from '../../src/shapes/where/value-set.js'

const column = (name: string, typeName: string, pk = false): ColumnInfo => ({ name, typeOid: 0, typeName, dims: 0, notNull: pk, pkIndex: pk ? 0 : undefined })

const table = (name: string, columns: ColumnInfo[]): TableInfo => ({
  oid: 1,
  table: { schema: 'public', name },
  primaryKey: [columns[0]!.name],
  replicaIdentity: 'default',
  identity: { source: 'primary-key' },
  partitioned: false,
  persistence: 'permanent',
  system: false,
  columns,
})

const TASKS = table('tasks', [column('id', 'int8', true), column('project_id', 'int4'), column('owner', 'text'), column('cost', 'numeric'), column('at', 'timestamptz')])
const MEMBERSHIPS = table('memberships', [column('id', 'int8', true), column('project_id', 'int8'), column('user_id', 'text'), column('role', 'text')])
const PROJECTS = table('projects', [column('id', 'int4', true), column('org', 'text'), column('budget', 'numeric'), column('at', 'timestamptz')])
const TABLES: SubqueryTables = new Map([
  ['"public"."memberships"', MEMBERSHIPS],
  ['"public"."projects"', PROJECTS],
  ['"public"."tasks"', TASKS],
])
const params = (values: Record<number, string>) => (n: number) => values[n]

/** A fresh set the clause's first subquery evaluates against. */
function setOf(compiled: CompiledWhere): ValueSet {
  const set = new ValueSet()
  compiled.subqueries[0]!.values.set = set
  return set
}

function rejection(where: string, values: Record<number, string> = {}): readonly string[] | undefined {
  try {
    compileWhere(where, params(values), TASKS, TABLES)
  } catch (error) {
    expect(error).toBeInstanceOf(InvalidRequestError)
    return (error as InvalidRequestError).errors['where']
  }
  throw new Error(`expected ${where} to be rejected`)
}

describe('where with subqueries', () => {
  it('has one canonical text, with parameters inlined inside the subquery', () => {
    const canonical = `("project_id" IN (SELECT "project_id" FROM "public"."memberships" WHERE ("user_id" = 'u1')))`
    expect(canonicalizeWhere(`project_id in (select project_id from memberships where user_id = $1)`, params({ 1: 'u1' }))).toBe(canonical)
    expect(canonicalizeWhere(canonical)).toBe(canonical)
    expect(canonicalizeWhere(`(project_id, owner) NOT IN (SELECT project_id, user_id FROM public.memberships)`)).toBe(
      `(NOT (("project_id", "owner") IN (SELECT "project_id", "user_id" FROM "public"."memberships")))`,
    )
  })

  it('lists the tables subqueries read, nested ones too', () => {
    expect(tablesOfWhere(`project_id IN (SELECT id FROM projects WHERE id IN (SELECT project_id FROM s.memberships))`)).toEqual([
      { table: { schema: 'public', name: 'projects' }, at: 30 },
      { table: { schema: 's', name: 'memberships' }, at: 75 },
    ])
  })

  it('renders SQL from the tree, subqueries included', () => {
    const compiled = compileWhere(`owner = 'a' OR project_id IN (SELECT project_id FROM memberships WHERE user_id = $1)`, params({ 1: "o'brien" }), TASKS, TABLES)
    expect(compiled.sql).toBe(
      `(("owner" = CAST('a' AS pg_catalog.text)) OR ("project_id" IN (SELECT "project_id" FROM "public"."memberships" WHERE ("user_id" = CAST('o''brien' AS pg_catalog.text)))))`,
    )
    expect(compiled.subqueries).toHaveLength(1)
  })

  it('evaluates IN, NOT IN and row values against the tuples set, with PostgreSQL NULL rules', () => {
    const inSet = compileWhere(`project_id IN (SELECT project_id FROM memberships)`, params({}), TASKS, TABLES)
    const notIn = compileWhere(`project_id NOT IN (SELECT project_id FROM memberships)`, params({}), TASKS, TABLES)
    const set = setOf(inSet)
    notIn.subqueries[0]!.values.set = set
    expect(inSet.evaluate({ project_id: '1' })).toBe(false)
    expect(notIn.evaluate({ project_id: '1' })).toBe(true)
    expect(notIn.evaluate({ project_id: null })).toBe(true) // empty set: NULL NOT IN () is true
    set.add(['1'])
    expect(inSet.evaluate({ project_id: '1' })).toBe(true)
    expect(notIn.evaluate({ project_id: '2' })).toBe(true)
    expect(notIn.evaluate({ project_id: null })).toBe(null)
    set.add([null])
    expect(inSet.evaluate({ project_id: '2' })).toBe(null)
    expect(notIn.evaluate({ project_id: '2' })).toBe(null)
    expect(notIn.matches({ project_id: '2' })).toBe(false)
    set.delete([null])
    set.add(['1'])
    set.delete(['1'])
    expect(inSet.evaluate({ project_id: '1' })).toBe(true) // a second row still gives it
    set.delete(['1'])
    expect(inSet.evaluate({ project_id: '1' })).toBe(false)

    const row = compileWhere(`(project_id, owner) IN (SELECT project_id, user_id FROM memberships)`, params({}), TASKS, TABLES)
    const tuples = setOf(row)
    tuples.add(['1', 'a'])
    expect(row.evaluate({ project_id: '1', owner: 'a' })).toBe(true)
    expect(row.evaluate({ project_id: '1', owner: 'b' })).toBe(false)
    expect(row.evaluate({ project_id: '1', owner: null })).toBe(null)
    expect(row.evaluate({ project_id: '2', owner: null })).toBe(false)
  })

  it('compares in the common type: int4 with int8, numeric without trailing zeros', () => {
    const compiled = compileWhere(`cost IN (SELECT budget FROM projects)`, params({}), TASKS, TABLES)
    setOf(compiled).add(['1.5'])
    expect(compiled.evaluate({ cost: '1.50' })).toBe(true)
    const widened = compileWhere(`project_id IN (SELECT project_id FROM memberships)`, params({}), TASKS, TABLES)
    setOf(widened).add(['7'])
    expect(widened.evaluate({ project_id: '7' })).toBe(true)
  })

  // Each is refused before anything runs, at the position of what is wrong.
  it.each([
    [`project_id IN (SELECT project_id FROM secrets)`, 'At location 38: table public.secrets is not available to subqueries'],
    [`project_id IN (SELECT project_id FROM memberships WHERE owner = 'a')`, 'At location 56: column "owner" does not exist in public.memberships'],
    [`project_id IN (SELECT project_id FROM memberships m WHERE m.user_id = tasks.owner)`, "At location 38: a subquery's table may not have an alias or a database name"],
    [`project_id IN (SELECT project_id FROM memberships WHERE memberships.user_id = tasks.owner)`, "At location 56: columns must be plain column names of the shape's table (no table prefix, no *)"],
    [`project_id IN (SELECT max(project_id) FROM memberships)`, 'At location 22: a subquery must select plain columns of its table (no functions, aggregates or expressions)'],
    [`project_id IN (SELECT project_id FROM memberships LIMIT 1)`, 'At location 56: a subquery may not use LIMIT'],
    [`project_id IN (SELECT project_id FROM memberships ORDER BY id)`, 'At location 59: a subquery may not use ORDER BY'],
    [`project_id IN (SELECT project_id FROM memberships GROUP BY project_id)`, 'At location 59: a subquery may not use GROUP BY'],
    [`project_id IN (SELECT DISTINCT project_id FROM memberships)`, 'At location 11: a subquery may not use DISTINCT'],
    [`project_id IN (SELECT project_id FROM memberships, projects)`, 'At location 51: a subquery must read exactly one table (FROM table, no joins or functions)'],
    [`project_id IN (SELECT project_id FROM generate_series(1, 3))`, 'At location 38: a subquery must read exactly one table (FROM table, no joins or functions)'],
    [`project_id IN (SELECT project_id FROM memberships UNION SELECT 1)`, 'At location 22: a subquery may not use UNION, INTERSECT or EXCEPT'],
    [`project_id IN (SELECT project_id FROM memberships WHERE pg_sleep(1) IS NULL)`, 'At location 56: function pg_sleep() is not supported (supported: lower, upper, length, abs, coalesce)'],
    [`project_id IN (SELECT project_id, user_id FROM memberships)`, 'At location 11: the subquery selects 2 columns but IN compares 1'],
    [`owner IN (SELECT project_id FROM memberships)`, 'At location 0: cannot compare text with int8 in IN (SELECT …)'],
    [`at IN (SELECT at FROM projects)`, 'At location 0: IN (SELECT …) cannot compare timestamptz values (supported: integers, numeric, text, uuid, bool, enums, date)'],
    [`(project_id IN (SELECT project_id FROM memberships)) = false`, 'At location 12: a subquery can only be combined with AND, OR and NOT, not used inside an expression'],
    [`project_id = ANY (SELECT project_id FROM memberships)`, 'At location 11: only IN (SELECT …) subqueries are supported (not EXISTS, scalar subqueries or ANY/ALL with an operator)'],
    [`project_id = (SELECT project_id FROM memberships)`, 'At location 13: only IN (SELECT …) subqueries are supported (not EXISTS, scalar subqueries or ANY/ALL with an operator)'],
    [`id IN (SELECT id FROM tasks WHERE id IN (SELECT id FROM tasks WHERE id IN (SELECT id FROM tasks WHERE id IN (SELECT id FROM tasks))))`, 'At location 105: nests subqueries deeper than 3'],
    [Array.from({ length: 9 }, () => `id IN (SELECT id FROM tasks)`).join(' OR '), 'At location 259: has more than 8 subqueries'],
  ])('%s', (where, reason) => {
    expect(rejection(where)).toEqual([reason])
  })

  it('names a missing parameter used inside a subquery', () => {
    expect(() => compileWhere(`project_id IN (SELECT project_id FROM memberships WHERE user_id = $1)`, params({}), TASKS, TABLES)).toThrow(
      expect.objectContaining({ errors: { 'params[1]': ['is missing: the where clause uses $1'] } }),
    )
  })
})

describe('TupleOverlay', () => {
  const overlay = (base: ValueSet, entries: [TupleParts, boolean][]) =>
    new TupleOverlay(base, new Map(entries.map(([parts, present]) => [tupleKey(parts), { parts, present }])))

  it('has NULL tuples as its base and its own tuples say', () => {
    const plain = new ValueSet()
    plain.add(['1'])
    expect(overlay(plain, [[['2'], true]]).hasNullTuples).toBe(false)
    expect(overlay(plain, [[[null], true]]).hasNullTuples).toBe(true)
    expect(overlay(plain, [[[null], false]]).hasNullTuples).toBe(false)
    const withNull = new ValueSet()
    withNull.add([null])
    withNull.add(['1'])
    expect(overlay(withNull, []).hasNullTuples).toBe(true)
    expect(overlay(withNull, [[[null], false]]).hasNullTuples).toBe(false)
  })

  it('tells a base without NULL tuples has none without listing its tuples (a move-in judges every row it read so)', () => {
    const base = new ValueSet()
    for (let i = 0; i < 100; i++) base.add([String(i)])
    base.tuples = () => {
      throw new Error('listed every tuple of the base')
    }
    expect(overlay(base, [[['100'], true], [['1'], false]]).hasNullTuples).toBe(false)
  })
})
