/**
 * Reads a client's `where` text with PostgreSQL's real parser (libpg-query) as
 * `SELECT 1 WHERE <clause>`, and accepts exactly one boolean expression made of the supported
 * nodes — anything else (a second statement, FROM/ORDER BY/UNION, comments, functions outside
 * the list, subqueries other than `IN (SELECT cols FROM table WHERE …)`) is a 400 naming the
 * position. Limits apply before parsing so a
 * hostile clause never costs more than a bounded amount of work.
 */
import { loadModule, parseSync, scanSync } from 'libpg-query'
import { InvalidRequestError } from '../../errors.js'
import { PARAMS } from '../../protocol/constants.js'
import type { BinaryOp, CompareOp, FunctionName, WhereNode } from './where-ast.js'
import { whereErrorAt } from './where-error.js'
import { CAST_TYPES } from './where-types.js'

export const WHERE_LIMITS = {
  /** Characters of the clause. */
  maxLength: 10_240,
  /** Highest `$n`. */
  maxParams: 100,
  /** Characters of one parameter value. */
  maxParamLength: 10_240,
  /** Nesting of parentheses and of the expression tree. */
  maxDepth: 64,
  /** Subqueries in one clause, nested ones included. */
  maxSubqueries: 8,
  /** Subqueries inside subqueries: `a IN (SELECT b FROM t WHERE c IN (SELECT …))` is 2. */
  maxSubqueryDepth: 3,
} as const

// The parser is WebAssembly: load it once, when this module is first imported.
await loadModule()

const PREFIX = 'SELECT 1 WHERE '
/** Keys a bare `SELECT 1 WHERE x` statement has; any other means more than a where clause. */
const ALLOWED_SELECT_KEYS = new Set(['targetList', 'whereClause', 'limitOption', 'op'])
const COMPARE_OPS: ReadonlySet<string> = new Set(['=', '<>', '<', '<=', '>', '>='])
const BINARY_OPS: ReadonlySet<string> = new Set([...COMPARE_OPS, '+', '-', '*', '/', '%', '||', '@>', '<@', '&&'])
const FUNCTIONS: ReadonlySet<string> = new Set(['lower', 'upper', 'length', 'abs'])
/** PostgreSQL's names for the types a cast may name, after its own alias folding. */
const TYPE_NAMES: Readonly<Record<string, string>> = CAST_TYPES

/** Reads `params[n]`; undefined when the request has none. */
export type ParamReader = (n: number) => string | undefined

/** The clause's syntax tree, validated, with parameters filled in. Throws InvalidRequestError. */
export function parseWhere(text: string, param: ParamReader): WhereNode {
  if (text.trim() === '') throw invalid('must not be empty')
  if (text.length > WHERE_LIMITS.maxLength) throw invalid(`is longer than ${WHERE_LIMITS.maxLength} characters`)
  if (text.includes('\u0000')) throw invalid('must not contain NUL characters')
  const depth = parenthesisDepth(text)
  if (depth > WHERE_LIMITS.maxDepth) throw invalid(`nests parentheses deeper than ${WHERE_LIMITS.maxDepth}`)

  const sql = PREFIX + text
  // Only text with `--`, `/*` or `;` can hold a comment or a second statement; scanning the
  // others was half of parsing (a restart parses every stored shape's where).
  if (/--|\/\*|;/.test(text)) rejectCommentsAndSemicolons(sql)
  let result
  try {
    result = parseSync(sql)
  } catch (error) {
    throw syntaxError(error)
  }
  const statements = result.stmts ?? []
  const select = (statements[0]?.stmt as Record<string, unknown> | undefined)?.['SelectStmt'] as Record<string, unknown> | undefined
  if (statements.length !== 1 || !select) throw invalid('must be a single boolean expression')
  for (const key of Object.keys(select)) {
    if (!ALLOWED_SELECT_KEYS.has(key)) throw invalid(`must be a single boolean expression, without FROM, GROUP BY, ORDER BY, LIMIT, UNION or similar clauses (found ${key})`)
  }
  if (select['op'] !== 'SETOP_NONE' || !select['whereClause']) throw invalid('must be a single boolean expression')
  return new Converter(sql, param).convert(select['whereClause'], 0)
}

function rejectCommentsAndSemicolons(sql: string): void {
  let tokens
  try {
    tokens = scanSync(sql).tokens
  } catch (error) {
    throw syntaxError(error)
  }
  for (const token of tokens) {
    if (token.tokenName === 'SQL_COMMENT' || token.tokenName === 'C_COMMENT') throw whereErrorAt(clauseOffset(token.start), 'comments are not allowed')
    if (token.text === ';') throw whereErrorAt(clauseOffset(token.start), 'must be a single expression, without ";"')
  }
}

type Json = Record<string, unknown>

class Converter {
  #subqueries = 0
  #subqueryDepth = 0

  constructor(
    readonly sql: string,
    readonly param: ParamReader,
  ) {}

  convert(node: unknown, depth: number): WhereNode {
    if (depth > WHERE_LIMITS.maxDepth) throw invalid(`is nested deeper than ${WHERE_LIMITS.maxDepth} levels`)
    const [tag, body] = Object.entries(node as Json)[0] as [string, Json]
    const at = this.at((body as { location?: unknown }).location)
    const next = (child: unknown) => this.convert(child, depth + 1)
    switch (tag) {
      case 'ColumnRef': {
        const fields = body['fields'] as Json[]
        const name = (fields[0]?.['String'] as Json | undefined)?.['sval']
        if (fields.length !== 1 || typeof name !== 'string') {
          throw this.error('columns must be plain column names of the shape\'s table (no table prefix, no *)', at)
        }
        return { kind: 'column', name, at }
      }
      case 'A_Const':
        return this.constant(body, at)
      case 'ParamRef': {
        const n = body['number'] as number
        if (n < 1 || n > WHERE_LIMITS.maxParams) throw this.error(`parameter $${n} is out of range (1..${WHERE_LIMITS.maxParams})`, at)
        const value = this.param(n)
        if (value === undefined) {
          throw InvalidRequestError.of(`${PARAMS.params}[${n}]`, `is missing: the where clause uses $${n}`)
        }
        if (value.length > WHERE_LIMITS.maxParamLength) {
          throw InvalidRequestError.of(`${PARAMS.params}[${n}]`, `is longer than ${WHERE_LIMITS.maxParamLength} characters`)
        }
        if (value.includes('\u0000')) throw InvalidRequestError.of(`${PARAMS.params}[${n}]`, 'must not contain NUL characters')
        // A parameter is a quoted literal whose type its context decides, like '...'.
        return { kind: 'literal', literal: 'string', text: value, at }
      }
      case 'BoolExpr': {
        const args = (body['args'] as unknown[]).map(next)
        // AND and OR are associative (also in three-valued logic): flatten nested ones so
        // `a AND (b AND c)` and `(a AND b) AND c` are one shape.
        const flat = (kind: 'and' | 'or') => args.flatMap((a) => (a.kind === kind ? a.args : [a]))
        switch (body['boolop']) {
          case 'AND_EXPR':
            return { kind: 'and', args: flat('and'), at }
          case 'OR_EXPR':
            return { kind: 'or', args: flat('or'), at }
          default:
            return { kind: 'not', arg: args[0]!, at }
        }
      }
      case 'NullTest':
        return { kind: 'isNull', arg: next(body['arg']), negated: body['nulltesttype'] === 'IS_NOT_NULL', at }
      case 'BooleanTest': {
        const test = String(body['booltesttype']) // IS_TRUE, IS_NOT_FALSE, IS_UNKNOWN, ...
        const negated = test.startsWith('IS_NOT_')
        const value = test.slice(negated ? 7 : 3).toLowerCase() as 'true' | 'false' | 'unknown'
        return { kind: 'isBool', arg: next(body['arg']), value, negated, at }
      }
      case 'TypeCast':
        return { kind: 'cast', arg: next(body['arg']), ...this.typeName(body['typeName'] as Json, at), at }
      case 'A_ArrayExpr':
        return { kind: 'array', elements: ((body['elements'] as unknown[] | undefined) ?? []).map(next), at }
      case 'CoalesceExpr':
        return { kind: 'call', name: 'coalesce', args: (body['args'] as unknown[]).map(next), at }
      case 'FuncCall':
        return this.call(body, at, next)
      case 'A_Expr':
        return this.expression(body, at, next)
      case 'SubLink':
        return this.subquery(body, at, depth)
      case 'SQLValueFunction':
        throw this.error('functions of the current time or session (CURRENT_DATE, CURRENT_USER, ...) are not allowed: a shape must be deterministic', at)
      case 'CollateClause':
        throw this.error('COLLATE is not supported (text comparisons use the C collation)', at)
      default:
        throw this.error(`${describe(tag)} is not supported in where`, at)
    }
  }

  /**
   * `x IN (SELECT col FROM table [WHERE …])` and its row-value form. The inner select is one
   * table and plain columns: no join, alias, function, aggregate, DISTINCT, GROUP BY, ORDER BY or
   * LIMIT. Its columns cannot name the outer table (no prefixes), so it cannot be correlated.
   */
  subquery(body: Json, at: number, depth: number): WhereNode {
    if (body['subLinkType'] !== 'ANY_SUBLINK' || body['operName']) {
      throw this.error('only IN (SELECT …) subqueries are supported (not EXISTS, scalar subqueries or ANY/ALL with an operator)', at)
    }
    if (++this.#subqueries > WHERE_LIMITS.maxSubqueries) throw this.error(`has more than ${WHERE_LIMITS.maxSubqueries} subqueries`, at)
    if (this.#subqueryDepth >= WHERE_LIMITS.maxSubqueryDepth) throw this.error(`nests subqueries deeper than ${WHERE_LIMITS.maxSubqueryDepth}`, at)
    const next = (child: unknown) => this.convert(child, depth + 1)
    const test = body['testexpr'] as Json
    const row = test['RowExpr'] as Json | undefined
    const args = row ? ((row['args'] as unknown[] | undefined) ?? []).map(next) : [next(test)]
    const select = (body['subselect'] as Json)['SelectStmt'] as Json
    for (const [key, value] of Object.entries(select)) {
      if (!SUBSELECT_KEYS.has(key)) throw this.error(`a subquery may not use ${SUBSELECT_CLAUSES[key] ?? key}`, this.at(firstLocation(value)) || at)
    }
    if (select['op'] !== 'SETOP_NONE') throw this.error('a subquery may not use UNION, INTERSECT or EXCEPT', at)
    const from = (select['fromClause'] as Json[] | undefined) ?? []
    const range = from[0]?.['RangeVar'] as Json | undefined
    if (from.length !== 1 || !range) throw this.error('a subquery must read exactly one table (FROM table, no joins or functions)', this.at(firstLocation(from[1] ?? from[0])) || at)
    const tableAt = this.at((range as { location?: unknown }).location)
    if (range['alias'] || range['catalogname']) throw this.error('a subquery\'s table may not have an alias or a database name', tableAt)
    const table = { schema: String(range['schemaname'] ?? 'public'), name: String(range['relname']) }
    const columns = (select['targetList'] as Json[]).map((target) => {
      const result = target['ResTarget'] as Json
      const value = result['val'] as Json
      const columnAt = this.at((result as { location?: unknown }).location)
      if (!('ColumnRef' in value)) throw this.error('a subquery must select plain columns of its table (no functions, aggregates or expressions)', columnAt)
      return this.convert(value, depth + 1)
    })
    if (columns.length !== args.length) {
      throw this.error(`the subquery selects ${columns.length} column${columns.length === 1 ? '' : 's'} but IN compares ${args.length}`, at)
    }
    this.#subqueryDepth++
    const where = select['whereClause'] === undefined ? undefined : this.convert(select['whereClause'], depth + 1)
    this.#subqueryDepth--
    return { kind: 'subquery', args, table, tableAt, columns, where, at }
  }

  constant(body: Json, at: number): WhereNode {
    if (body['isnull']) return { kind: 'literal', literal: 'null', text: '', at }
    if ('ival' in body) return { kind: 'literal', literal: 'integer', text: String((body['ival'] as Json)['ival'] ?? 0), at }
    if ('fval' in body) {
      const text = String((body['fval'] as Json)['fval'])
      // The parser leaves integers too large for int4 as text; PostgreSQL types them int8 or numeric.
      return { kind: 'literal', literal: /^-?\d+$/.test(text) ? 'integer' : 'decimal', text, at }
    }
    if ('boolval' in body) return { kind: 'literal', literal: 'boolean', text: (body['boolval'] as Json)['boolval'] ? 'true' : 'false', at }
    if ('sval' in body) return { kind: 'literal', literal: 'string', text: String((body['sval'] as Json)['sval'] ?? ''), at }
    throw this.error('bit-string constants are not supported', at)
  }

  typeName(typeName: Json, at: number): { typeName: string; array: boolean } {
    const names = (typeName['names'] as Json[]).map((n) => String((n['String'] as Json)['sval']))
    const bare = names.length === 2 && names[0] === 'pg_catalog' ? names[1]! : names.length === 1 ? names[0]! : undefined
    const resolved = bare === undefined ? undefined : TYPE_NAMES[bare]
    if (!resolved) throw this.error(`cast to ${names.join('.')} is not supported (supported: ${[...new Set(Object.values(TYPE_NAMES))].join(', ')})`, at)
    if (typeName['typmods'] || typeName['setof'] || typeName['pct_type']) throw this.error('type modifiers are not supported in casts', at)
    return { typeName: resolved, array: Array.isArray(typeName['arrayBounds']) }
  }

  call(body: Json, at: number, next: (n: unknown) => WhereNode): WhereNode {
    const names = (body['funcname'] as Json[]).map((n) => String((n['String'] as Json)['sval']))
    const name = names.length === 2 && names[0] === 'pg_catalog' ? names[1]! : names.length === 1 ? names[0]! : names.join('.')
    if (!FUNCTIONS.has(name)) throw this.error(`function ${name}() is not supported (supported: lower, upper, length, abs, coalesce)`, at)
    for (const key of ['agg_star', 'agg_distinct', 'func_variadic', 'over', 'agg_filter', 'agg_order', 'agg_within_group']) {
      if (body[key]) throw this.error(`${name}() must be called as a plain function`, at)
    }
    if (body['funcformat'] !== 'COERCE_EXPLICIT_CALL') throw this.error(`${name}() must be called as a plain function`, at)
    const args = ((body['args'] as unknown[] | undefined) ?? []).map(next)
    if (args.length !== 1) throw this.error(`${name}() takes one argument`, at)
    return { kind: 'call', name: name as FunctionName, args, at }
  }

  expression(body: Json, at: number, next: (n: unknown) => WhereNode): WhereNode {
    const nameParts = ((body['name'] as Json[] | undefined) ?? []).map((n) => String((n['String'] as Json)['sval']))
    if (nameParts.length !== 1) throw this.error('schema-qualified operators are not supported', at)
    const op = nameParts[0]!
    const kind = String(body['kind'])
    const list = () => ((body['rexpr'] as Json)['List'] as Json)['items'] as unknown[]
    switch (kind) {
      case 'AEXPR_OP': {
        if (!BINARY_OPS.has(op)) throw this.error(`operator ${op} is not supported`, at)
        if (body['lexpr'] === undefined) {
          if (op !== '-' && op !== '+') throw this.error(`prefix operator ${op} is not supported`, at)
          const arg = next(body['rexpr'])
          return op === '-' ? { kind: 'negate', arg, at } : arg
        }
        return { kind: 'binary', op: op as BinaryOp, left: next(body['lexpr']), right: next(body['rexpr']), at }
      }
      case 'AEXPR_OP_ANY':
      case 'AEXPR_OP_ALL':
        if (!COMPARE_OPS.has(op)) throw this.error(`operator ${op} is not supported with ANY/ALL`, at)
        return { kind: 'quantified', op: op as CompareOp, left: next(body['lexpr']), right: next(body['rexpr']), all: kind === 'AEXPR_OP_ALL', at }
      case 'AEXPR_DISTINCT':
      case 'AEXPR_NOT_DISTINCT':
        return { kind: 'distinct', left: next(body['lexpr']), right: next(body['rexpr']), negated: kind === 'AEXPR_NOT_DISTINCT', at }
      case 'AEXPR_IN':
        return { kind: 'in', arg: next(body['lexpr']), list: list().map(next), negated: op === '<>', at }
      case 'AEXPR_LIKE':
      case 'AEXPR_ILIKE': {
        const pattern = body['rexpr'] as Json
        if ('FuncCall' in pattern) throw this.error('LIKE ... ESCAPE is not supported', at)
        return { kind: 'like', arg: next(body['lexpr']), pattern: next(pattern), negated: op.startsWith('!'), caseInsensitive: kind === 'AEXPR_ILIKE', at }
      }
      case 'AEXPR_BETWEEN':
      case 'AEXPR_NOT_BETWEEN':
      case 'AEXPR_BETWEEN_SYM':
      case 'AEXPR_NOT_BETWEEN_SYM': {
        const [low, high] = list()
        return {
          kind: 'between',
          arg: next(body['lexpr']),
          low: next(low),
          high: next(high),
          negated: kind.includes('NOT'),
          symmetric: kind.endsWith('SYM'),
          at,
        }
      }
      default:
        throw this.error(`${kind.replace('AEXPR_', '').replaceAll('_', ' ')} is not supported`, at)
    }
  }

  at(location: unknown): number {
    return typeof location === 'number' ? clauseOffset(location) : 0
  }

  error(message: string, at: number): InvalidRequestError {
    return whereErrorAt(at, message)
  }
}

/** Keys a subquery's `SELECT cols FROM table WHERE x` has; any other is a clause we refuse. */
const SUBSELECT_KEYS = new Set(['targetList', 'fromClause', 'whereClause', 'limitOption', 'op'])
const SUBSELECT_CLAUSES: Readonly<Record<string, string>> = {
  distinctClause: 'DISTINCT',
  groupClause: 'GROUP BY',
  havingClause: 'HAVING',
  sortClause: 'ORDER BY',
  limitCount: 'LIMIT',
  limitOffset: 'OFFSET',
  windowClause: 'WINDOW',
  withClause: 'WITH',
  lockingClause: 'FOR UPDATE/SHARE',
  intoClause: 'INTO',
  valuesLists: 'VALUES',
  larg: 'UNION, INTERSECT or EXCEPT',
}

/** The smallest parse location in a subtree (-1 and absent ones skipped), for errors about a clause. */
function firstLocation(node: unknown): number | undefined {
  let first: number | undefined
  const visit = (value: unknown) => {
    if (Array.isArray(value)) value.forEach(visit)
    else if (value && typeof value === 'object') {
      const at = (value as { location?: unknown }).location
      if (typeof at === 'number' && at >= 0) first = first === undefined ? at : Math.min(first, at)
      Object.values(value).forEach(visit)
    }
  }
  visit(node)
  return first
}

function describe(tag: string): string {
  const names: Record<string, string> = {
    CaseExpr: 'CASE',
    MinMaxExpr: 'GREATEST/LEAST',
    RowExpr: 'a row constructor',
    A_Indirection: 'subscripts and field selection',
    NullIfExpr: 'NULLIF',
    XmlExpr: 'XML',
    GroupingFunc: 'GROUPING',
  }
  return names[tag] ?? tag
}

/** A node's location (a byte offset into the parsed statement) as an offset into the clause. */
function clauseOffset(statementByteOffset: number): number {
  return Math.max(0, statementByteOffset - PREFIX.length)
}

function syntaxError(error: unknown): InvalidRequestError {
  const details = (error as { sqlDetails?: { message: string; cursorPosition: number } }).sqlDetails
  if (!details) return invalid((error as Error).message)
  // libpg-query's JS binding makes PostgreSQL's 1-based cursor position 0-based (0 when unknown).
  return whereErrorAt(details.cursorPosition > 0 ? details.cursorPosition + 1 : 0, details.message)
}

/** Parenthesis depth outside quoted strings and identifiers: a cheap bound before parsing. */
function parenthesisDepth(text: string): number {
  let depth = 0
  let max = 0
  let quote: string | undefined
  for (const ch of text) {
    if (quote) {
      if (ch === quote) quote = undefined
    } else if (ch === "'" || ch === '"') quote = ch
    else if (ch === '(' || ch === '[') max = Math.max(max, ++depth)
    else if (ch === ')' || ch === ']') depth--
  }
  return max
}

function invalid(reason: string): InvalidRequestError {
  return InvalidRequestError.of(PARAMS.where, reason)
}
