/**
 * SQL producing a column's text *output* (what pgoutput sends), not its cast to text: for a
 * few types the cast differs — `bool::text` is `true` where the output is `t`, `char(n)::text`
 * trims padding, `inet::text` adds a netmask. `format('%s', v)` calls the output function.
 */
import { quoteIdent } from './sql.js'
import type { ColumnInfo } from './introspect.js'

const CAST_DIFFERS_FROM_OUTPUT = new Set(['bool', 'bpchar', 'inet', 'cidr', 'char'])

/** Text output of the column, NULL for NULL. */
export function textOutputSql(column: Pick<ColumnInfo, 'name' | 'typeName' | 'dims'>): string {
  const ref = quoteIdent(column.name)
  if (column.dims === 0 && CAST_DIFFERS_FROM_OUTPUT.has(column.typeName)) {
    return `CASE WHEN ${ref} IS NULL THEN NULL ELSE format('%s', ${ref}) END`
  }
  return `${ref}::text`
}
