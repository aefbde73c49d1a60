/**
 * The `where` compiler's front door. `canonicalizeWhere` needs no table: it is what a shape's
 * identity uses, at request time. `compileWhere` binds the clause to the table's columns and
 * returns both evaluations — SQL for the snapshot and a TypeScript evaluator for replicated
 * changes — plus the equality index the router uses.
 */
import type { TableInfo } from '../../pg/introspect.js'
import type { TableName } from '../../pg/table-name.js'
import { bindWhere, type SubqueryTables } from './bind-where.js'
import { canonicalWhere } from './canonical.js'
import { findEqualityIndex, type EqualityIndex } from './equality-index.js'
import { buildEvaluator, type Row } from './evaluate.js'
import { parseWhere, type ParamReader } from './parse-where.js'
import { renderSql } from './render-sql.js'
import type { Typed } from './typed-ast.js'
import type { WhereNode } from './where-ast.js'
import { EvaluationError } from './values.js'

export interface CompiledWhere {
  /** Boolean SQL over the table's columns, rebuilt from the syntax tree. */
  readonly sql: string
  /** PostgreSQL's answer for one row of text values: true, false or null (unknown). */
  readonly evaluate: (row: Row) => boolean | null
  /** True only when the row is in the shape; a run-time error (e.g. overflow) counts as not. */
  readonly matches: (row: Row) => boolean
  readonly canonical: string
  readonly equalityIndex?: EqualityIndex
  /** The clause's subqueries, outermost first (nested ones inside their `where`); empty without. */
  readonly subqueries: readonly SubqueryNode[]
  /** The typed clause, for what subqueries need to know of its shape (`subquery/`). */
  readonly typed: Typed
}

export type SubqueryNode = Extract<Typed, { kind: 'subquery' }>

const noParams: ParamReader = () => undefined

/** The canonical text of a clause, with `params` inlined. Throws InvalidRequestError. */
export function canonicalizeWhere(text: string, params: ParamReader = noParams): string {
  return canonicalWhere(parseWhere(text, params))
}

/** A table a clause's subquery reads, with where it is named in the clause's text. */
export interface NamedTable {
  readonly table: TableName
  readonly at: number
}

/** The tables the clause's subqueries read, with where each is named, for loading before `compileWhere`. */
export function tablesOfWhere(text: string, params: ParamReader = noParams): NamedTable[] {
  return tablesOfParsedWhere(parseWhere(text, params))
}

/** As `tablesOfWhere`, for a clause already parsed (a request's, which it parses once). */
export function tablesOfParsedWhere(parsed: WhereNode): NamedTable[] {
  const found: NamedTable[] = []
  const visit = (node: WhereNode) => {
    if (node.kind === 'subquery') found.push({ table: node.table, at: node.tableAt })
    for (const value of Object.values(node)) {
      for (const child of Array.isArray(value) ? value : [value]) {
        if (child && typeof child === 'object' && 'kind' in child) visit(child as WhereNode)
      }
    }
  }
  visit(parsed)
  return found
}

/**
 * Compiles a clause for `table`, its subqueries for the tables in `tables`. Throws
 * InvalidRequestError naming `where` (or `params[n]`).
 */
export function compileWhere(text: string, params: ParamReader, table: TableInfo, tables?: SubqueryTables): CompiledWhere {
  const parsed = parseWhere(text, params)
  const canonical = canonicalWhere(parsed)
  // Errors point into `text`, but the result is bound from the canonical text, as a stored
  // shape's is, so the same definition always compiles to the same SQL and evaluator.
  const fromText = bindWhere(parsed, table, tables)
  const typed = text === canonical ? fromText : bindWhere(parseWhere(canonical, noParams), table, tables)
  return compiledFrom(typed, canonical)
}

/**
 * Compiles a clause already parsed from its canonical text `canonical` (a stored shape's), so a
 * caller that can build that tree without PostgreSQL's parser does not parse it again.
 */
export function compileParsedWhere(parsed: WhereNode, canonical: string, table: TableInfo, tables?: SubqueryTables): CompiledWhere {
  return compiledFrom(bindWhere(parsed, table, tables), canonical)
}

function compiledFrom(typed: Typed, canonical: string): CompiledWhere {
  const evaluate = buildEvaluator(typed)
  const equalityIndex = findEqualityIndex(typed)
  // A clause that is nothing but its equality index (`col = c`, `col IN (…)`) holds exactly
  // when the row's key is one of the index's: a set lookup, without parsing the value (this
  // runs for every change routed to the shape).
  const isIndexOnly = equalityIndex !== undefined && (typed.kind === 'compare' || typed.kind === 'in')
  return {
    sql: renderSql(typed),
    evaluate,
    matches: isIndexOnly
      ? keyMatcher(equalityIndex)
      : (row) => {
          try {
            return evaluate(row) === true
          } catch (error) {
            if (error instanceof EvaluationError) return false
            throw error
          }
        },
    canonical,
    ...(equalityIndex ? { equalityIndex } : {}),
    subqueries: subqueriesOf(typed),
    typed,
  }
}

function subqueriesOf(node: Typed): SubqueryNode[] {
  const found: SubqueryNode[] = []
  const visit = (n: Typed) => {
    if (n.kind === 'subquery') {
      found.push(n)
      if (n.where) visit(n.where)
      return
    }
    if (n.kind === 'and' || n.kind === 'or') n.args.forEach(visit)
    else if (n.kind === 'not') visit(n.arg)
  }
  visit(node)
  return found
}

function keyMatcher({ column, values, keyOf }: EqualityIndex): (row: Row) => boolean {
  const keys = new Set(values)
  return (row) => {
    const text = row[column]
    if (text === null || text === undefined) return false
    const key = keyOf(text)
    return key !== null && keys.has(key)
  }
}

export type { Row, EqualityIndex, ParamReader, SubqueryTables }
export { EvaluationError }
export { WHERE_LIMITS } from './parse-where.js'
