/** SQL text helpers for the few statements built from catalog names (never from client text). */
import type { TableName } from './table-name.js'

/** A quoted identifier: any text, with `"` doubled, names exactly that relation or column. */
export function quoteIdent(identifier: string): string {
  return `"${identifier.replaceAll('"', '""')}"`
}

export function qualifiedName(table: TableName): string {
  return `${quoteIdent(table.schema)}.${quoteIdent(table.name)}`
}

/** A standard-conforming string literal. */
export function sqlLiteral(value: string): string {
  if (value.includes('\u0000')) throw new Error('NUL byte in SQL literal')
  return `'${value.replaceAll("'", "''")}'`
}
