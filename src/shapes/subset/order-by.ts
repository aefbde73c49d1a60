/**
 * A subset's `order_by`: read with PostgreSQL's own parser as `SELECT 1 ORDER BY <text>` and
 * accepted only as a list of plain column references, each with `ASC|DESC` and
 * `NULLS FIRST|LAST`. Anything else (expressions, `USING`, a second clause, comments) is a 400
 * naming the position, counted as `where` errors are (`where/where-error.ts`): a syntax error at
 * PostgreSQL's 1-based cursor in `SELECT 1 ORDER BY <clause>`, any other at its 0-based byte
 * offset in the clause. The SQL is rebuilt from the parsed items, never from the client's text;
 * text columns sort in the C collation, as `where` compares them.
 */
import { loadModule, parseSync, scanSync } from 'libpg-query'
import { InvalidRequestError } from '../../errors.js'
import type { TableInfo } from '../../pg/introspect.js'
import { quoteIdent } from '../../pg/sql.js'
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
  /** 0-based byte offset in the clause, for errors. */
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
  const at = (byteOffset: number) => Math.max(0, byteOffset - PREFIX.length)
  const failAt = (location: number, reason: string) => fail(`At location ${location}: ${reason}`)
  let tokens
  try {
    tokens = scanSync(sql).tokens
  } catch (error) {
    throw syntaxError(error, failAt, fail)
  }
  for (const token of tokens) {
    if (token.tokenName === 'SQL_COMMENT' || token.tokenName === 'C_COMMENT') throw failAt(at(token.start), 'comments are not allowed')
    if (token.text === ';') throw failAt(at(token.start), 'must be a single ORDER BY list')
  }
  let result
  try {
    result = parseSync(sql)
  } catch (error) {
    throw syntaxError(error, failAt, fail)
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
      throw failAt(nodeAt, "can only order by plain column names of the shape's table, not expressions")
    }
    const direction = DIRECTIONS[String(sortBy['sortby_dir'])]
    if (sortBy['sortby_dir'] === 'SORTBY_USING' || sortBy['useOp']) throw failAt(nodeAt, 'USING is not supported, use ASC or DESC')
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
        throw fail(`At location ${item.at}: column ${JSON.stringify(item.column)} ${why}`)
      }
      const type = columnType(column)
      const orderable = type && !type.array && (type.scalar === 'text' || type.scalar === 'bool' || type.scalar === 'uuid' || type.scalar === 'enum' || NUMBERS.has(type.scalar) || DATETIMES.has(type.scalar))
      if (!orderable) throw fail(`At location ${item.at}: column ${JSON.stringify(item.column)} has type ${column.typeName}${column.dims ? '[]' : ''}, which cannot be ordered on`)
      const ref = type.scalar === 'text' ? `${quoteIdent(column.name)} COLLATE "C"` : quoteIdent(column.name)
      return [ref, item.direction, item.nulls ? `NULLS ${item.nulls}` : undefined].filter((part) => part !== undefined).join(' ')
    })
    .join(', ')
}

function syntaxError(error: unknown, failAt: (location: number, reason: string) => InvalidRequestError, fail: Fail): InvalidRequestError {
  const details = (error as { sqlDetails?: { message: string; cursorPosition: number } }).sqlDetails
  if (!details) return fail((error as Error).message)
  // libpg-query's JS binding makes PostgreSQL's 1-based cursor position 0-based (0 when unknown).
  return failAt(details.cursorPosition > 0 ? details.cursorPosition + 1 : 0, details.message)
}
