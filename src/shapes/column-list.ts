/**
 * The `columns` query parameter: a comma-separated list of column names, quoted the SQL way
 * when needed (`"has,comma"`, `"has""quote"`, `"MixedCase"`); unquoted names fold to lower
 * case as in PostgreSQL. Returns the names sorted and without duplicates: the order a client
 * lists them in does not change the shape (values always follow the table's column order).
 */
import { InvalidRequestError } from '../errors.js'
import { MAX_IDENTIFIER_BYTES } from '../pg/table-name.js'
import { PARAMS } from '../protocol/constants.js'

const MAX_COLUMNS = 1600 // PostgreSQL's MaxHeapAttributeNumber

/** `param` names the query parameter in errors (`queryable_columns` has the same syntax). */
export function parseColumnList(text: string, param: string = PARAMS.columns): readonly string[] {
  const invalid = (reason: string) => InvalidRequestError.of(param, reason)
  const names: string[] = []
  let at = 0
  for (;;) {
    while (text[at] === ' ') at++
    let name: string
    if (text[at] === '"') {
      name = ''
      at++
      for (;;) {
        const close = text.indexOf('"', at)
        if (close === -1) throw invalid(`unterminated quoted name in ${JSON.stringify(text)}`)
        name += text.slice(at, close)
        at = close + 1
        if (text[at] !== '"') break
        name += '"'
        at++
      }
      if (name === '') throw invalid('a quoted name must not be empty')
    } else {
      const match = /^[A-Za-z_][A-Za-z0-9_$]*/.exec(text.slice(at))
      if (!match) throw invalid(`expected a column name at position ${at + 1} of ${JSON.stringify(text)} (quote names with other characters in double quotes)`)
      name = match[0].toLowerCase()
      at += match[0].length
    }
    if (name.includes('\u0000')) throw invalid('names must not contain NUL characters')
    if (Buffer.byteLength(name) > MAX_IDENTIFIER_BYTES) throw invalid(`name ${JSON.stringify(name)} is longer than ${MAX_IDENTIFIER_BYTES} bytes`)
    names.push(name)
    if (names.length > MAX_COLUMNS) throw invalid(`lists more than ${MAX_COLUMNS} columns`)
    while (text[at] === ' ') at++
    if (at === text.length) break
    if (text[at] !== ',') throw invalid(`unexpected ${JSON.stringify(text[at])} at position ${at + 1} of ${JSON.stringify(text)}`)
    at++
  }
  return [...new Set(names)].sort()
}
