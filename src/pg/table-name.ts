/**
 * The `table` query parameter names a relation the way SQL does (`items`, `app."My Table"`).
 * Parsing it here, with PostgreSQL's identifier rules, gives one canonical `TableName` per
 * relation, so `Items` and `items` share a shape while `"Items"` is a different table.
 * A single left-to-right scan; anything it does not fully consume is rejected.
 */
import { ERROR_CODES, TableError } from '../errors.js'

/** A relation as PostgreSQL names it: both parts as stored in the catalog (case kept). */
export interface TableName {
  readonly schema: string
  readonly name: string
}

/** PostgreSQL's NAMEDATALEN - 1: longer identifiers would be silently truncated by the server. */
export const MAX_IDENTIFIER_BYTES = 63

export const DEFAULT_SCHEMA = 'public'

const UNQUOTED_START = /[A-Za-z_]/
const UNQUOTED_REST = /[A-Za-z0-9_$]/

/**
 * Parses `name` or `schema.name`; unquoted parts fold to lower case, quoted parts keep
 * their text (`""` inside quotes is one `"`). The schema defaults to `public`.
 * @throws TableError (`invalid_table_name`) when the text is not a valid name.
 */
export function parseTableName(text: string): TableName {
  if (text.length === 0) throw invalid('must not be empty')
  if (text.includes('\0')) throw invalid('must not contain NUL bytes')

  const parts: string[] = []
  let at = 0
  for (;;) {
    const part = text[at] === '"' ? readQuoted(text, at) : readUnquoted(text, at)
    parts.push(part.identifier)
    at = part.end
    if (at === text.length) break
    if (text[at] !== '.') {
      throw invalid(`unexpected ${JSON.stringify(text[at])} at position ${at} of ${JSON.stringify(text)}`)
    }
    at += 1
    if (parts.length === 2) throw invalid(`must be "name" or "schema.name", got more than two parts: ${JSON.stringify(text)}`)
  }

  for (const part of parts) {
    if (Buffer.byteLength(part, 'utf8') > MAX_IDENTIFIER_BYTES) {
      throw invalid(`identifier ${JSON.stringify(part)} is longer than ${MAX_IDENTIFIER_BYTES} bytes`)
    }
  }
  const [first, second] = parts as [string, string | undefined]
  return second === undefined ? { schema: DEFAULT_SCHEMA, name: first } : { schema: first, name: second }
}

interface Part {
  readonly identifier: string
  /** Index just past the part. */
  readonly end: number
}

function readQuoted(text: string, start: number): Part {
  let identifier = ''
  let at = start + 1
  for (;;) {
    const close = text.indexOf('"', at)
    if (close === -1) throw invalid(`unterminated quoted identifier in ${JSON.stringify(text)}`)
    identifier += text.slice(at, close)
    if (text[close + 1] === '"') {
      identifier += '"'
      at = close + 2
      continue
    }
    if (identifier.length === 0) throw invalid(`zero-length quoted identifier in ${JSON.stringify(text)}`)
    return { identifier, end: close + 1 }
  }
}

function readUnquoted(text: string, start: number): Part {
  const first = text[start]
  if (first === undefined || !UNQUOTED_START.test(first)) {
    const found = first === undefined ? 'end of text' : JSON.stringify(first)
    throw invalid(
      `expected an identifier at position ${start} of ${JSON.stringify(text)}, found ${found} ` +
        '(unquoted names start with a letter or "_"; quote other names with double quotes)',
    )
  }
  let end = start + 1
  while (end < text.length && UNQUOTED_REST.test(text[end] as string)) end += 1
  // PostgreSQL folds unquoted identifiers to lower case; only ASCII can reach here.
  return { identifier: text.slice(start, end).toLowerCase(), end }
}

function invalid(reason: string): TableError {
  return new TableError(ERROR_CODES.invalidTableName, reason)
}
