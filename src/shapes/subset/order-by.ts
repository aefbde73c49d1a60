/**
 * A subset's `order_by`: read with PostgreSQL's own parser as `SELECT 1 ORDER BY <text>` and
 * accepted only as a list of plain column references, each with `ASC|DESC` and
 * `NULLS FIRST|LAST`. Anything else (expressions, `USING`, a second clause, comments) is a 400
 * naming the position. The SQL is rebuilt from the parsed items, never from the client's text;
 * text columns sort in the C collation, as `where` compares them.
 */
import { loadModule, parseSync, scanSync } from 'libpg-query'
import { InvalidRequestError } from '../../errors.js'
import type { TableInfo } from '../../pg/introspect.js'
import { quoteIdent } from '../shape-definition.js'
import { columnType, DATETIMES, NUMBERS } from '../where/where-types.js'

export const ORDER_BY_LIMITS = {
  maxLength: 10_240,
  maxItems: 64,
} as const

export const SORT_DIRECTIONS = { asc: 'ASC', desc: 'DESC' } as const
export type SortDirection = (typeof SORT_DIRECTIONS)[keyof typeof SORT_DIRECTIONS]
export const NULLS_ORDER = { first: 'FIRST', last: 'LAST' } as const
export type NullsOrder = (typeof NULLS_ORDER)[keyof typeof NULLS_ORDER]

export interface OrderByItem {
  readonly column: string
  readonly direction: SortDirection | undefined
  readonly nulls: NullsOrder | undefined
  /** 0-based character offset in the clause, for errors. */
  readonly at: number
}

await loadModule()

const PREFIX = 'SELECT 1 ORDER BY '
const ALLOWED_SELECT_KEYS = new Set(['targetList', 'sortClause', 'limitOption', 'op'])
const DIRECTIONS: Readonly<Record<string, SortDirection | undefined>> = {
  SORTBY_DEFAULT: undefined,
  SORTBY_ASC: SORT_DIRECTIONS.asc,
  SORTBY_DESC: SORT_DIRECTIONS.desc,
}
const NULLS: Readonly<Record<string, NullsOrder | undefined>> = {
  SORTBY_NULLS_DEFAULT: undefined,
  SORTBY_NULLS_FIRST: NULLS_ORDER.first,
  SORTBY_NULLS_LAST: NULLS_ORDER.last,
}

type Json = Record<string, unknown>
type Fail = (reason: string) => InvalidRequestError

/** The clause's items. `fail` makes the 400 (it names the parameter the text came from). */
export function parseOrderBy(text: string, fail: Fail): readonly OrderByItem[] {
  if (text.trim() === '') throw fail('must not be empty')
  if (text.length > ORDER_BY_LIMITS.maxLength) throw fail(`is longer than ${ORDER_BY_LIMITS.maxLength} characters`)
  if (text.includes('\u0000')) throw fail('must not contain NUL characters')
  const sql = PREFIX + text
  const at = (byteOffset: number) => Math.max(0, charOffset(sql, byteOffset) - PREFIX.length)
  let tokens
  try {
    tokens = scanSync(sql).tokens
  } catch (error) {
    throw syntaxError(sql, error, fail)
  }
  for (const token of tokens) {
    if (token.tokenName === 'SQL_COMMENT' || token.tokenName === 'C_COMMENT') throw fail(`comments are not allowed (at character ${at(token.start) + 1})`)
    if (token.text === ';') throw fail(`must be a single ORDER BY list: ";" at character ${at(token.start) + 1}`)
  }
  let result
  try {
    result = parseSync(sql)
  } catch (error) {
    throw syntaxError(sql, error, fail)
  }
  const statements = result.stmts ?? []
  const select = (statements[0]?.stmt as Json | undefined)?.['SelectStmt'] as Json | undefined
  if (statements.length !== 1 || !select || select['op'] !== 'SETOP_NONE') throw fail('must be a list of columns to order by')
  for (const key of Object.keys(select)) {
    if (!ALLOWED_SELECT_KEYS.has(key)) throw fail(`must be a list of columns to order by, without LIMIT, OFFSET or other clauses (found ${key})`)
  }
  const items = (select['sortClause'] as Json[] | undefined) ?? []
  if (items.length > ORDER_BY_LIMITS.maxItems) throw fail(`orders by more than ${ORDER_BY_LIMITS.maxItems} columns`)
  return items.map((item) => {
    const sortBy = item['SortBy'] as Json
    const node = sortBy['node'] as Json
    const ref = node['ColumnRef'] as Json | undefined
    const fields = (ref?.['fields'] as Json[] | undefined) ?? []
    const name = (fields[0]?.['String'] as Json | undefined)?.['sval']
    const location = (Object.values(node)[0] as { location?: unknown } | undefined)?.location
    const nodeAt = typeof location === 'number' && location >= 0 ? at(location) : 0
    if (!ref || fields.length !== 1 || typeof name !== 'string') {
      throw fail(`can only order by plain column names of the shape's table, not expressions (at character ${nodeAt + 1})`)
    }
    const direction = DIRECTIONS[String(sortBy['sortby_dir'])]
    if (sortBy['sortby_dir'] === 'SORTBY_USING' || sortBy['useOp']) throw fail(`USING is not supported, use ASC or DESC (at character ${nodeAt + 1})`)
    return { column: name, direction, nulls: NULLS[String(sortBy['sortby_nulls'])], at: nodeAt }
  })
}

/**
 * Checks the items against `table` and renders them. `allowed` limits the columns a client may
 * order on (`queryable_columns`); undefined means every column of the table.
 */
export function orderBySql(items: readonly OrderByItem[], table: TableInfo, allowed: ReadonlySet<string> | undefined, fail: Fail): string {
  return items
    .map((item) => {
      const column = table.columns.find((c) => c.name === item.column)
      if (!column || (allowed && !allowed.has(column.name))) {
        const why = column ? 'is not one of queryable_columns' : `does not exist in ${table.table.schema}.${table.table.name}`
        throw fail(`column ${JSON.stringify(item.column)} ${why} (at character ${item.at + 1})`)
      }
      const type = columnType(column)
      const orderable = type && !type.array && (type.scalar === 'text' || type.scalar === 'bool' || type.scalar === 'uuid' || type.scalar === 'enum' || NUMBERS.has(type.scalar) || DATETIMES.has(type.scalar))
      if (!orderable) throw fail(`column ${JSON.stringify(item.column)} has type ${column.typeName}${column.dims ? '[]' : ''}, which cannot be ordered on (at character ${item.at + 1})`)
      const ref = type.scalar === 'text' ? `${quoteIdent(column.name)} COLLATE "C"` : quoteIdent(column.name)
      return [ref, item.direction, item.nulls ? `NULLS ${item.nulls}` : undefined].filter((part) => part !== undefined).join(' ')
    })
    .join(', ')
}

/** libpg-query reports byte offsets into the UTF-8 text; errors speak in characters. */
function charOffset(sql: string, byteOffset: number): number {
  return Buffer.from(sql, 'utf8').subarray(0, byteOffset).toString('utf8').length
}

function syntaxError(sql: string, error: unknown, fail: Fail): InvalidRequestError {
  const details = (error as { sqlDetails?: { message: string; cursorPosition: number } }).sqlDetails
  const message = details?.message ?? (error as Error).message
  const at = details && details.cursorPosition > 0 ? ` (at character ${Math.max(1, charOffset(sql, details.cursorPosition - 1) - PREFIX.length + 1)})` : ''
  return fail(`${message}${at}`)
}
