/**
 * The SQL of a shape's snapshot: one JSON text per row, rendered by PostgreSQL in the exact
 * wire shape of an insert message, so snapshot rows are copied to storage without parsing.
 * Built only from catalog names (quoted), constant fragments and the where SQL that the where
 * compiler rebuilt from a syntax tree — never from client text. `table` lists only the
 * shape's selected columns. A keyless table's identical rows come once (they share a key).
 * A shared snapshot (`snapshot-plan.ts`) puts the same row expression in its own select list.
 */
import { IDENTITY_SOURCES, type TableInfo } from '../pg/introspect.js'
import { sqlLiteral } from '../pg/sql.js'
import { textOutputSql } from '../pg/text-output-sql.js'
import { qualifiedName } from '../pg/sql.js'
import { relationPrefix, rowKeySql } from './row-key.js'

/**
 * `extraHeaders` join `operation` and `relation` in every row's headers (a subset's `snapshot_mark`);
 * `headersSql` joins them too, each the SQL of a JSON text computed for the row (the tags of a
 * shape with subqueries).
 */
export function snapshotRowSql(
  table: TableInfo,
  whereSql?: string,
  extraHeaders: Readonly<Record<string, string | number>> = {},
  headersSql: Readonly<Record<string, string>> = {},
): string {
  return `SELECT ${distinctSql(table)}${rowJsonSql(table, extraHeaders, headersSql)} FROM ${qualifiedName(table.table)}${whereSql === undefined ? '' : ` WHERE ${whereSql}`}`
}

/** `DISTINCT ` for a table keyed on all columns, where identical rows share a key: send each once. */
export function distinctSql(table: TableInfo): string {
  return table.identity.source === IDENTITY_SOURCES.allColumns ? 'DISTINCT ' : ''
}

/** The expression of a row's insert message as JSON text (see `snapshotRowSql`). */
export function rowJsonSql(table: TableInfo, extraHeaders: Readonly<Record<string, string | number>> = {}, headersSql: Readonly<Record<string, string>> = {}): string {
  const values = table.columns.map((column, i) => {
    const name = `${i === 0 ? '' : ','}${JSON.stringify(column.name)}:`
    return `${sqlLiteral(name)} || coalesce(to_json(${textOutputSql(column)})::text, 'null')`
  })
  const headers = JSON.stringify({ operation: 'insert', relation: [table.table.schema, table.table.name], ...extraHeaders })
  const pkColumns = table.primaryKey.map((name) => table.columns.find((c) => c.name === name)!)
  const key = rowKeySql(relationPrefix(table.table), pkColumns)
  const parts = [
    sqlLiteral('{"key":'),
    `to_json(${key})::text`,
    sqlLiteral(',"value":{'),
    ...values,
    sqlLiteral(`},"headers":${headers.slice(0, -1)}`),
    ...Object.entries(headersSql).flatMap(([name, sql]) => [sqlLiteral(`,${JSON.stringify(name)}:`), sql]),
    sqlLiteral('}}'),
  ]
  return parts.join(' || ')
}
