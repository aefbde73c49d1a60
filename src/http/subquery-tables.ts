/**
 * The tables a `where`'s subqueries read, each looked up and checked as a shape's own table is
 * (it exists, Sluice can serve it, `SLUICE_TABLES` lists it): a subquery cannot read what a
 * shape could not. A refused table is a 400 naming `where` at the table's position.
 */
import { TableError } from '../errors.js'
import type { TableInfo } from '../pg/introspect.js'
import { qualifiedName } from '../pg/sql.js'
import type { TableCatalog } from '../pg/table-catalog.js'
import type { NamedTable, SubqueryTables } from '../shapes/where/compile-where.js'
import { whereErrorAt } from '../shapes/where/where-error.js'

/** `named`: the tables as the where names them (`tablesOfWhere`, or `tablesOfParsedWhere` of a parse at hand). */
export async function subqueryTables(catalog: Pick<TableCatalog, 'get'>, named: readonly NamedTable[]): Promise<SubqueryTables> {
  const tables = new Map<string, TableInfo>()
  for (const { table, at } of named) {
    const key = qualifiedName(table)
    if (tables.has(key)) continue
    try {
      tables.set(key, await catalog.get(table))
    } catch (error) {
      if (!(error instanceof TableError)) throw error
      throw whereErrorAt(at, `a subquery cannot read ${table.schema}.${table.name}: ${error.message}`)
    }
  }
  return tables
}
