/**
 * PostgreSQL errors that the same request would meet again however long it waited: bad data
 * for a cast or an operator (class 22), a statement PostgreSQL rejects or the role may not run
 * (42), a feature it lacks (0A), a limit the statement passes (54). They are answered 400, never
 * 503 (a client retries a 503 forever) and never a 409 (a refetch would meet them again).
 */
const PERMANENT_CLASSES = new Set(['22', '42', '0A', '54'])

const DATA_EXCEPTION = '22'

/** The SQLSTATE of a permanent PostgreSQL error, or undefined for anything else. */
export function permanentSqlState(error: unknown): string | undefined {
  const code = sqlStateOf(error)
  return code !== undefined && PERMANENT_CLASSES.has(code.slice(0, 2)) ? code : undefined
}

/** Class 22: a value the statement cannot handle (`1/x` with x = 0, a bad cast), not the statement itself. */
export function isDataException(error: unknown): boolean {
  return sqlStateOf(error)?.startsWith(DATA_EXCEPTION) ?? false
}

function sqlStateOf(error: unknown): string | undefined {
  const code = error instanceof Error ? (error as { code?: unknown }).code : undefined
  return typeof code === 'string' && code.length === 5 ? code : undefined
}
