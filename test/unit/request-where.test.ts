/**
 * A new shape's `where` on the request path: PostgreSQL's parser runs at most once per new shape (the
 * request's parse gives its identity and is what the shape is compiled from; texts of a family
 * share one, `where/where-families.ts`), and what that
 * compiles to is exactly what compiling the stored canonical text gives (a restart compiles that).
 */
import fc from 'fast-check'
import pg from 'pg'
import { pino } from 'pino'
import { beforeEach, describe, expect, it, vi } from 'vitest'
import { InvalidRequestError } from '../../src/errors.js'
import type { TableInfo } from '../../src/pg/introspect.js'
import { column, itemsTable } from '../support/catalog-table.js'
import { observedWhere } from '../support/observed-where.js'
import { requireAllowedSubqueryTables, requireAllowedTable } from '../../src/http/allow-list.js'
import { parseShapeRequest } from '../../src/http/shape-request.js'
import type { TableName } from '../../src/pg/table-name.js'
import { resolveShape, type ShapeRouteDeps } from '../../src/http/shape-route.js'
import { ActiveShape } from '../../src/shapes/active-shape.js'
import { ShapeManager } from '../../src/shapes/shape-manager.js'
import { ShapeNotifier } from '../../src/shapes/shape-notifier.js'
import type { ShapeLogStore } from '../../src/storage/shape-log-store.js'
import type { ShapeDefinition } from '../../src/shapes/shape-definition.js'
import { bindShape, type RequestWhere } from '../../src/shapes/shape-filter.js'
import { makeShapeHandle } from '../../src/shapes/shape-handle.js'
import { compileWhere, type CompiledWhere, type Row } from '../../src/shapes/where/compile-where.js'
import { SHAPE_STATUS } from '../../src/storage/shape-log-store.js'

const parser = vi.hoisted(() => ({ parses: 0 }))
vi.mock('libpg-query', async (importOriginal) => {
  const actual = await importOriginal<typeof import('libpg-query')>()
  return {
    ...actual,
    parseSync: (...args: Parameters<typeof actual.parseSync>) => {
      parser.parses++
      return actual.parseSync(...args)
    },
  }
})

const TABLE: TableInfo = itemsTable([column('id', 'int8'), column('user_id', 'int4'), column('owner', 'text'), column('price', 'numeric'), column('tags', 'text', { dims: 1 }), column('uid', 'uuid')])

const ROWS: Row[] = [
  { id: '1', user_id: '7', owner: "it's", price: '1.50', tags: '{a,b}', uid: '00000000-0000-0000-0000-000000000001' },
  { id: '-3', user_id: '-3', owner: 'x', price: '100000', tags: '{}', uid: null },
]

/** The where each new shape was bound by, as `ShapeManager.getOrCreate` binds it. */
let bound: CompiledWhere | undefined

const deps = {
  tables: { get: async () => TABLE, find: async () => TABLE, forget: () => {} },
  canCreateShapes: () => true,
  manager: {
    byHandle: () => undefined,
    byDefinition: () => undefined,
    drop: async () => {},
    mustRefetch: async () => {
      throw new Error('no handle was given')
    },
    getOrCreate: async (definition: ShapeDefinition, table: TableInfo, where: RequestWhere = {}) => {
      const shape = bindShape(definition, table, where.tables, where.where)
      bound = shape.where
      const stored = { id: 1, handle: makeShapeHandle('k', 1n), definition, definitionKey: 'k', status: SHAPE_STATUS.snapshotting, createdAtMs: 0 }
      return ActiveShape.waiting(stored, shape)
    },
  },
} as unknown as ShapeRouteDeps

/**
 * A new shape's request for `where` with `params`: the where it was bound by (observed), or the 400's
 * errors. `allowed`: SLUICE_TABLES, checked as `http/app.ts` checks a request.
 */
async function create(where: string, params: Record<number, string> = {}, allowed?: readonly TableName[]): Promise<unknown> {
  const query: Record<string, string> = { table: 'items', offset: '-1', where }
  for (const [n, value] of Object.entries(params)) query[`params[${n}]`] = value
  bound = undefined
  try {
    const request = parseShapeRequest((name) => query[name])
    requireAllowedTable(allowed, request.definition.table)
    requireAllowedSubqueryTables(allowed, request.whereSource)
    await resolveShape(deps, request)
    return observed(bound!)
  } catch (error) {
    expect(error).toBeInstanceOf(InvalidRequestError)
    return (error as InvalidRequestError).errors
  }
}

const observed = (where: CompiledWhere) => observedWhere(where, ROWS)

function compiledOrErrors(compile: () => CompiledWhere) {
  try {
    return observed(compile())
  } catch (error) {
    expect(error).toBeInstanceOf(InvalidRequestError)
    return (error as InvalidRequestError).errors
  }
}

const int = fc.oneof(fc.integer({ min: -10, max: 10 }), fc.integer(), fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n })).map(String)
const decimal = fc.constantFrom('1.5', '1.50', '0.000', '-0.5', '1e5', '2.5e-3', '.5', '12345678901234567890.123', '1_000')
const text = fc.oneof(fc.constantFrom('', "it's", "''", '"q"', '5', '-3', 'a\\b', 'ok'), fc.string({ maxLength: 6 }).filter((s) => !s.includes('\u0000')))
const quoted = (s: string) => `'${s.replaceAll("'", "''")}'`

/** Wheres as clients write them: spacing, case, parentheses, params, escapes, casts; some a table refuses. */
const REQUESTS: fc.Arbitrary<{ where: string; params: Record<number, string> }> = fc.oneof(
  int.map((k) => ({ where: `user_id = ${k}`, params: {} })),
  int.map((k) => ({ where: `USER_ID=$1`, params: { 1: k } })),
  decimal.map((d) => ({ where: `((id = ${d}))`, params: {} })),
  int.map((k) => ({ where: `user_id = - ${k}`, params: {} })),
  text.map((s) => ({ where: `owner = $1 or owner is null`, params: { 1: s } })),
  text.map((s) => ({ where: `owner = E${quoted(s.replaceAll('\\', '\\\\'))}`, params: {} })),
  fc.tuple(decimal, text, text).map(([d, a, b]) => ({ where: `price > ${d} and owner in (${quoted(a)},$1)`, params: { 1: b } })),
  fc.array(int, { minLength: 1, maxLength: 4 }).map((ks) => ({ where: `user_id in(${ks.join(',')})`, params: {} })),
  fc.tuple(int, int).map(([a, b]) => ({ where: `not id between ${a} and ${b}`, params: {} })),
  fc.tuple(text, int).map(([s, k]) => ({ where: `tags @> array[${quoted(s)}, null] AND price::int4 <> ${k}`, params: {} })),
  fc.tuple(int, decimal).map(([k, d]) => ({ where: `-price * ${k} <> all('{1}') and cast(price as float8) < ${d}`, params: {} })),
  fc.uuid().map((u) => ({ where: `uid = $1`, params: { 1: u.toUpperCase() } })),
  fc.constantFrom(`uid = 'not a uuid'`, `user_id = 99999999999`, `nope = 1`, `owner + 1 = 2`, `user_id = 1 AND TRUE`, `owner LIKE 'a%' AND user_id = -3`).map((where) => ({ where, params: {} })),
)

describe("a new shape's where on the request path", () => {
  beforeEach(() => {
    parser.parses = 0
  })

  it('is parsed once per new shape, and once per family of texts that differ only in their constants', async () => {
    for (let user = 0; user < 100; user++) await create(`user_id = ${user}`)
    // A parameter is not shared (its value could be anything a literal could be).
    for (let user = 0; user < 100; user++) await create(`user_id = $1 AND owner <> 'x'`, { 1: String(user) })
    expect(parser.parses).toBe(101)
  })

  it('is parsed once per new shape with a subquery, also when SLUICE_TABLES checks the tables it reads', async () => {
    const allowed = [TABLE.table]
    for (let user = 0; user < 50; user++) expect(await create(`owner IN (SELECT owner FROM items WHERE user_id = ${user})`, {}, allowed)).toHaveProperty('canonical')
    for (let user = 0; user < 50; user++) expect(await create(`owner IN (SELECT owner FROM items WHERE user_id = $1)`, { 1: String(user) })).toHaveProperty('canonical')
    expect(parser.parses).toBe(100)
  })

  it('is parsed once per family when a worker sends it to the owner, which gets its canonical text uncompiled', async () => {
    const manager = new ShapeManager({
      store: {} as ShapeLogStore,
      pool: new pg.Pool({ host: '/nonexistent', max: 1 }),
      notifier: new ShapeNotifier(),
      publication: 'unused',
      log: pino({ level: 'silent' }),
      maxShapes: 10,
      maxConcurrentSnapshots: 1,
      snapshotQueueLength: 10,
      serve: { allowKeylessTables: false },
    })
    const canonicalOf = (where: string) => parseShapeRequest((name) => ({ table: 'items', offset: '-1', where })[name]).definition
    const definitions = [...Array.from({ length: 100 }, (_, user) => canonicalOf(`user_id = ${user}`)), ...Array.from({ length: 100 }, (_, user) => canonicalOf(`user_id = ${user} AND owner <> 'x'`))]
    const refused = canonicalOf('nope = 1')
    parser.parses = 0
    for (const definition of definitions) {
      // Bound (a 400 would be thrown here), then refused: this manager was never started.
      await expect(manager.getOrCreate(definition, TABLE)).rejects.toThrow('Sluice is starting')
    }
    await expect(manager.getOrCreate(refused, TABLE)).rejects.toBeInstanceOf(InvalidRequestError)
    expect(parser.parses).toBe(3)
  })

  it('compiles to what its stored canonical text compiles to, or to the 400 that points into the client text', async () => {
    await fc.assert(
      fc.asyncProperty(REQUESTS, async ({ where, params }) => {
        const viaRequest = await create(where, params)
        let canonical: string
        try {
          canonical = parseShapeRequest((name) => ({ table: 'items', offset: '-1', where, ...Object.fromEntries(Object.entries(params).map(([n, v]) => [`params[${n}]`, v])) })[name]).definition.where!
        } catch {
          return
        }
        const stored = compiledOrErrors(() => compileWhere(canonical, () => undefined, TABLE))
        if (viaRequest !== null && typeof viaRequest === 'object' && 'canonical' in viaRequest) expect(viaRequest).toEqual(stored)
        // A where the table refuses: the same 400 as binding the client's own text gives.
        else {
          expect(stored).not.toHaveProperty('canonical')
          expect(viaRequest).toEqual(compiledOrErrors(() => compileWhere(where, (n) => params[n], TABLE)))
        }
      }),
      { numRuns: 400 },
    )
  })
})
