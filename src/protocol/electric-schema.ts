/**
 * The `electric-schema` header (docs/PROTOCOL.md: Headers): column name → type and modifiers, in
 * column order, as Electric's clients parse values by it. The wire format lives here; what a
 * column is comes from the catalog (`pg/introspect.ts`).
 */

/** What the header says of one column (`pg/introspect.ts` `ColumnInfo` extends it). */
export interface SchemaSourceColumn {
  readonly name: string
  /** Base type name, the element type's for arrays, e.g. 'int4'. */
  readonly typeName: string
  /** Array dimensions; 0 for scalars. */
  readonly dims: number
  /**
   * For a domain (or an array of one), the type as the header names it: the domain's own name,
   * and a domain over an array as a scalar. Unset: `typeName` and `dims`.
   */
  readonly declared?: { readonly typeName: string; readonly dims: number }
  readonly notNull: boolean
  /** Position in the row identity (primary key or unique index), from 0; undefined when not part of it. */
  readonly pkIndex: number | undefined
  /** varchar(n); the modifiers below are unset for domains, which the header gives none. */
  readonly maxLength?: number
  /** char(n) */
  readonly length?: number
  /** numeric(p, s) */
  readonly precision?: number
  readonly scale?: number
}

/** One column of the header. */
export type SchemaColumn = {
  type: string
  dims?: number
  pk_index?: number
  not_null?: boolean
  max_length?: number
  length?: number
  precision?: number
  scale?: number
}

export function electricSchema(table: { readonly columns: readonly SchemaSourceColumn[] }): Record<string, SchemaColumn> {
  const schema: Record<string, SchemaColumn> = {}
  for (const column of table.columns) {
    const { typeName, dims } = column.declared ?? column
    const entry: SchemaColumn = { type: typeName }
    if (dims > 0) entry.dims = dims
    if (column.pkIndex !== undefined) entry.pk_index = column.pkIndex
    if (column.notNull) entry.not_null = true
    if (column.maxLength !== undefined) entry.max_length = column.maxLength
    if (column.length !== undefined) entry.length = column.length
    if (column.precision !== undefined) entry.precision = column.precision
    if (column.scale !== undefined) entry.scale = column.scale
    schema[column.name] = entry
  }
  return schema
}
