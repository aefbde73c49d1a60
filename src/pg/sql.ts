/** SQL text helpers for the few statements built from catalog names (never from client text). */

/** A standard-conforming string literal. */
export function sqlLiteral(value: string): string {
  if (value.includes('\u0000')) throw new Error('NUL byte in SQL literal')
  return `'${value.replaceAll("'", "''")}'`
}
