/**
 * Binds a shape definition to its table: checks the selected columns (they must exist and
 * include the primary key) and compiles the `where` clause against the columns' types. The
 * result is what snapshots and the router use: the table narrowed to the selected columns
 * (so the snapshot and the `electric-schema` header list only those) and the compiled filter.
 * Throws InvalidRequestError (400) before any shape state is created.
 */
import { InvalidRequestError } from '../errors.js'
import type { TableInfo } from '../pg/introspect.js'
import { PARAMS } from '../protocol/constants.js'
import type { ShapeDefinition } from './shape-definition.js'
import { planWhere } from './subquery/plan.js'
import { compileWhere, type CompiledWhere, type SubqueryTables } from './where/compile-where.js'

/** What a request already knows of its where: the subquery tables it reads and its compiled form. */
export interface RequestWhere {
  readonly tables?: SubqueryTables
  readonly where?: CompiledWhere | undefined
}

export interface BoundShape {
  /** The table with only the selected columns, in table order. */
  readonly table: TableInfo
  readonly where: CompiledWhere | undefined
}

/**
 * `tables`: those the where's subqueries read (`tablesOfWhere`), already checked as servable.
 * `compiled`: the definition's where already compiled for `table` (a request compiles it to check
 * it), taken as it is rather than parsed again.
 */
export function bindShape(definition: ShapeDefinition, table: TableInfo, tables?: SubqueryTables, compiled?: CompiledWhere): BoundShape {
  let projected = table
  if (definition.columns) {
    const known = new Set(table.columns.map((c) => c.name))
    const unknown = definition.columns.filter((name) => !known.has(name))
    if (unknown.length > 0) {
      throw InvalidRequestError.of(PARAMS.columns, `no such column${unknown.length > 1 ? 's' : ''} in ${table.table.schema}.${table.table.name}: ${unknown.map((n) => JSON.stringify(n)).join(', ')}`)
    }
    const selected = new Set(definition.columns)
    const missingKey = table.primaryKey.filter((name) => !selected.has(name))
    if (missingKey.length > 0) {
      throw InvalidRequestError.of(PARAMS.columns, `must include the primary key column${missingKey.length > 1 ? 's' : ''} ${missingKey.map((n) => JSON.stringify(n)).join(', ')}`)
    }
    projected = { ...table, columns: table.columns.filter((c) => selected.has(c.name)) }
  }
  // The stored where text is canonical, with parameters already inlined.
  const where =
    definition.where === undefined
      ? undefined
      : compiled?.canonical === definition.where
        ? compiled
        : compileWhere(definition.where, () => undefined, table, tables)
  // A clause too wide for tags is a 400 now, not when the shape's runtime is built.
  if (where && where.subqueries.length > 0) planWhere(where.typed)
  return { table: projected, where }
}
