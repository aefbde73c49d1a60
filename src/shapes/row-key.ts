/**
 * Row keys `"schema"."table"/"pk1"/"pk2"`, the identity clients merge changes on. The same key
 * is built in TypeScript for replicated changes and in SQL for snapshot rows; the two builders
 * sit side by side so they cannot drift (a test compares them on real rows).
 */
import type { ColumnInfo } from '../pg/introspect.js'
import { sqlLiteral } from '../pg/sql.js'
import { textOutputSql } from '../pg/text-output-sql.js'
import { quoteIdent } from '../pg/sql.js'
import type { TableName } from '../pg/table-name.js'

export function relationPrefix(table: TableName): string {
  return `${quoteIdent(table.schema)}.${quoteIdent(table.name)}`
}

/** `/` inside a value is doubled so the separator stays unambiguous; NULL is `_`. */
export function rowKey(prefix: string, pkValues: readonly (string | null)[]): string {
  let key = prefix
  for (const value of pkValues) key += value === null ? '/_' : `/"${value.replaceAll('/', '//')}"`
  return key
}

/** SQL text producing the same key as `rowKey` for the current row. */
export function rowKeySql(prefix: string, pkColumns: readonly ColumnInfo[]): string {
  const parts = pkColumns.map((column) => `coalesce('"' || replace(${textOutputSql(column)}, '/', '//') || '"', '_')`)
  return [sqlLiteral(prefix), ...parts].join(` || '/' || `)
}
