/** `SLUICE_TABLES`: when set, only the listed tables may be served. */
import { tablesOfParsedWhere } from '../shapes/where/compile-where.js'
import type { WhereNode } from '../shapes/where/where-ast.js'
import { whereErrorAt } from '../shapes/where/where-error.js'
import { InvalidRequestError } from '../errors.js'
import { PARAMS } from '../protocol/constants.js'
import { qualifiedName } from '../pg/sql.js'
import type { TableName } from '../pg/table-name.js'

export function requireAllowedTable(allowed: readonly TableName[] | undefined, table: TableName): void {
  if (!allowed) return
  if (allowed.some((t) => t.schema === table.schema && t.name === table.name)) return
  throw InvalidRequestError.of(PARAMS.table, `table ${qualifiedName(table)} is not served here (see SLUICE_TABLES)`)
}

/**
 * The tables a `where`'s subqueries read are held to the same list: a 400 at the table's position.
 * `where`: the request's parse, which a new shape is compiled from (not parsed again here).
 */
export function requireAllowedSubqueryTables(allowed: readonly TableName[] | undefined, where: { readonly parsed: WhereNode } | undefined): void {
  if (!allowed || !where) return
  for (const { table, at } of tablesOfParsedWhere(where.parsed)) {
    if (!allowed.some((t) => t.schema === table.schema && t.name === table.name)) {
      throw whereErrorAt(at, `a subquery cannot read ${table.schema}.${table.name}: it is not served here (see SLUICE_TABLES)`)
    }
  }
}
