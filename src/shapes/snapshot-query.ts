/**
 * The SQL of a shape's snapshot: one JSON text per row, rendered by PostgreSQL in the exact
 * wire shape of an insert message, so snapshot rows are copied to storage without parsing.
 * Built only from catalog names (quoted), constant fragments and the where SQL that the where
 * compiler rebuilt from a syntax tree — never from client text. `table` lists only the
 * shape's selected columns. A keyless table's identical rows come once (they share a key).
 */
import { IDENTITY_SOURCES, type TableInfo } from '../pg/introspect.js'
import { sqlLiteral } from '../pg/sql.js'
import { textOutputSql } from '../pg/text-output-sql.js'
import { qualifiedName } from '../pg/sql.js'
import { relationPrefix, rowKeySql } from './row-key.js'

/**
 * `extraHeaders` join `operation` and `relation` in every row's headers (a subset's `snapshot_mark`);
 * `prefix` goes before each row's JSON (a batched snapshot's member number, `snapshot-batch.ts`);
 * `headersSql` joins them too, each the SQL of a JSON text computed for the row (the tags of a
 * shape with subqueries).
 */
export function snapshotRowSql(
  table: TableInfo,
  whereSql?: string,
  extraHeaders: Readonly<Record<string, string | number>> = {},
  prefix = '',
  headersSql: Readonly<Record<string, string>> = {},
): string {
  const values = table.columns.map((column, i) => {
    const name = `${i === 0 ? '' : ','}${JSON.stringify(column.name)}:`
    return `${sqlLiteral(name)} || coalesce(to_json(${textOutputSql(column)})::text, 'null')`
  })
  const headers = JSON.stringify({ operation: 'insert', relation: [table.table.schema, table.table.name], ...extraHeaders })
  const pkColumns = table.primaryKey.map((name) => table.columns.find((c) => c.name === name)!)
  const key = rowKeySql(relationPrefix(table.table), pkColumns)
  const parts = [
    sqlLiteral(`${prefix}{"key":`),
    `to_json(${key})::text`,
    sqlLiteral(',"value":{'),
    ...values,
    sqlLiteral(`},"headers":${headers.slice(0, -1)}`),
    ...Object.entries(headersSql).flatMap(([name, sql]) => [sqlLiteral(`,${JSON.stringify(name)}:`), sql]),
    sqlLiteral('}}'),
  ]
  const filter = whereSql === undefined ? '' : ` WHERE ${whereSql}`
  // Keyed on all columns, identical rows share a key: send each once.
  const distinct = table.identity.source === IDENTITY_SOURCES.allColumns ? 'DISTINCT ' : ''
  return `SELECT ${distinct}${parts.join(' || ')} FROM ${qualifiedName(table.table)}${filter}`
}
