/**
 * Which shapes a row change can concern, found without looking at every shape
 * (docs/ARCHITECTURE.md: Data flow, step 2). Per table, shapes whose where has an equality index (`col = const`,
 * `col IN (...)`, or an AND with such a side) sit in a hash map column → value key → shapes,
 * and are found by looking up the changed row's old and new values; the other shapes of the
 * table are always candidates. A candidate is not yet a match: the caller still evaluates the
 * where. A shape missed here is one whose where cannot hold for either row, so the index never
 * loses a change; it only saves evaluations. A shape's keys may change while it is routed
 * (`addKey`, `removeKey`): a shape with subqueries is routed by its subquery's current values (I29).
 */
import { UNCHANGED_TOAST, type Tuple } from '../replication/pgoutput-messages.js'
import type { Relation } from '../replication/transaction.js'
import type { EqualityIndex } from './where/compile-where.js'

interface ColumnIndex<S> {
  readonly keyOf: (text: string) => string | null
  readonly byKey: Map<string, Set<S>>
}

interface TableRoutes<S> {
  /** Its key in the index (`tableKey`). */
  readonly table: string
  readonly all: Set<S>
  /** Shapes without an equality index: candidates for every change. */
  readonly scanned: Set<S>
  readonly columns: Map<string, ColumnIndex<S>>
}

interface Entry {
  readonly table: string
  readonly column: string | undefined
  keys: readonly string[] | Set<string>
}

const NO_KEYS: readonly string[] = []

export class RoutingIndex<S> {
  readonly #tables = new Map<string, TableRoutes<S>>()
  readonly #entries = new Map<S, Entry>()
  readonly #positions = new WeakMap<Relation, Map<string, number>>()

  add(shape: S, schema: string, name: string, index: EqualityIndex | undefined): void {
    const key = tableKey(schema, name)
    let routes = this.#tables.get(key)
    if (!routes) this.#tables.set(key, (routes = { table: key, all: new Set(), scanned: new Set(), columns: new Map() }))
    routes.all.add(shape)
    // The key the table's routes were made with: one string for all its shapes, not one each.
    this.#entries.set(shape, { table: routes.table, column: index?.column, keys: index?.values ?? NO_KEYS })
    if (!index) {
      routes.scanned.add(shape)
      return
    }
    let column = routes.columns.get(index.column)
    if (!column) routes.columns.set(index.column, (column = { keyOf: index.keyOf, byKey: new Map() }))
    for (const key of index.values) {
      let shapes = column.byKey.get(key)
      if (!shapes) column.byKey.set(key, (shapes = new Set()))
      shapes.add(shape)
    }
  }

  /** The shape is now also found by `key` of its indexed column. */
  addKey(shape: S, key: string): void {
    const entry = this.#entries.get(shape)
    const column = entry?.column === undefined ? undefined : this.#tables.get(entry.table)?.columns.get(entry.column)
    if (!entry || !column) return
    // The index's own list is shared until the shape's keys first change (most never do).
    if (!(entry.keys instanceof Set)) entry.keys = new Set(entry.keys)
    entry.keys.add(key)
    let shapes = column.byKey.get(key)
    if (!shapes) column.byKey.set(key, (shapes = new Set()))
    shapes.add(shape)
  }

  /** The shape is no longer found by `key`. */
  removeKey(shape: S, key: string): void {
    const entry = this.#entries.get(shape)
    const column = entry?.column === undefined ? undefined : this.#tables.get(entry.table)?.columns.get(entry.column)
    if (!entry || !column) return
    if (!(entry.keys instanceof Set)) entry.keys = new Set(entry.keys)
    entry.keys.delete(key)
    const shapes = column.byKey.get(key)
    shapes?.delete(shape)
    if (shapes?.size === 0) column.byKey.delete(key)
  }

  remove(shape: S): void {
    const entry = this.#entries.get(shape)
    if (!entry) return
    const routes = this.#tables.get(entry.table)
    if (!routes) return void this.#entries.delete(shape)
    for (const key of [...entry.keys]) this.removeKey(shape, key)
    this.#entries.delete(shape)
    routes.all.delete(shape)
    routes.scanned.delete(shape)
    if (routes.all.size === 0) this.#tables.delete(entry.table)
  }

  /** Every shape on the table (a TRUNCATE concerns them all). */
  shapesOf(schema: string, name: string): Iterable<S> {
    return this.#tables.get(tableKey(schema, name))?.all ?? []
  }

  /** The shapes a change to `relation` with these rows may concern. */
  candidates(relation: Relation, record: Tuple | undefined, old: Tuple | undefined): Iterable<S> {
    const routes = this.#tables.get(tableKey(relation.schema, relation.name))
    if (!routes) return []
    if (routes.columns.size === 0) return routes.scanned
    // Runs once per change: with one set of shapes found (the common case) it is returned as
    // it is; a new set is made only to merge several.
    let only: Set<S> | undefined = routes.scanned.size > 0 ? routes.scanned : undefined
    let found: Set<S> | undefined
    const positions = this.#positionsOf(relation)
    for (const [name, column] of routes.columns) {
      const at = positions.get(name)
      if (at === undefined) continue
      const oldValue = old?.[at]
      let newValue = record?.[at]
      if (newValue === UNCHANGED_TOAST) newValue = oldValue
      const newShapes = this.#lookUp(column, newValue)
      const oldShapes = oldValue === newValue ? undefined : this.#lookUp(column, oldValue)
      for (const shapes of [newShapes, oldShapes]) {
        if (shapes === undefined || shapes === only) continue
        if (only === undefined) only = shapes
        else {
          found ??= new Set(only)
          for (const shape of shapes) found.add(shape)
        }
      }
    }
    return found ?? only ?? []
  }

  #lookUp(column: ColumnIndex<S>, value: Tuple[number] | undefined): Set<S> | undefined {
    if (typeof value !== 'string') return undefined
    const key = column.keyOf(value)
    return key === null ? undefined : column.byKey.get(key)
  }

  #positionsOf(relation: Relation): Map<string, number> {
    let positions = this.#positions.get(relation)
    if (!positions) {
      positions = new Map(relation.columns.map((c, i) => [c.name, i]))
      this.#positions.set(relation, positions)
    }
    return positions
  }
}

function tableKey(schema: string, name: string): string {
  return `${schema}\u0000${name}`
}
