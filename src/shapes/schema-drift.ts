/**
 * Has the table under a shape changed so that its log can no longer continue? (Issue: schema
 * changes rotate shapes.) Compared by table OID, name, and each served column's name and type:
 * a dropped, renamed or retyped column, a renamed or replaced table, a new row identity, or — for shapes serving
 * every column — an added column all end the shape; clients then refetch a snapshot under the
 * new schema. Pure; fed by pgoutput Relation messages and by the catalog.
 */
import type { TableInfo } from '../pg/introspect.js'
import type { StoredShape } from '../storage/shape-log-store.js'

export interface CurrentTable {
  readonly oid: number
  readonly schema: string
  readonly name: string
  readonly columns: readonly { readonly name: string; readonly typeOid: number }[]
  /** The row identity's columns, when known (the catalog knows; pgoutput does not say). */
  readonly key?: readonly string[]
}

/** Why the shape no longer fits `current`, or undefined when it still does. */
export function schemaChange(shape: { readonly table: TableInfo; readonly stored: StoredShape }, current: CurrentTable): string | undefined {
  const table = shape.table
  if (current.oid !== table.oid) return 'the table was dropped and created again'
  if (current.schema !== table.table.schema || current.name !== table.table.name) {
    return `the table was renamed to ${current.schema}.${current.name}`
  }
  const types = new Map(current.columns.map((c) => [c.name, c.typeOid]))
  for (const column of table.columns) {
    const typeOid = types.get(column.name)
    if (typeOid === undefined) return `column ${column.name} was dropped or renamed`
    if (typeOid !== column.typeOid) return `column ${column.name} changed type`
  }
  if (current.key && current.key.join('\u0000') !== table.primaryKey.join('\u0000')) {
    // The log's keys were made from the old identity: a client would hold each row twice.
    return `the row identity changed from (${table.primaryKey.join(', ')}) to (${current.key.join(', ')})`
  }
  if (!shape.stored.definition.columns && current.columns.length !== table.columns.length) {
    return 'a column was added'
  }
  return undefined
}
