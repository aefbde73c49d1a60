/**
 * The SQL of a typed `where`, for the snapshot query. Rebuilt from the tree: columns quoted
 * from the catalog's names, every literal re-printed from its parsed value, quoted and cast to
 * the type PostgreSQL would have given it, fully parenthesized; the client's text never
 * reaches PostgreSQL. Text ordering, ILIKE, lower() and upper() are pinned to the C collation
 * so PostgreSQL answers exactly what the TypeScript evaluator answers, whatever the database's
 * default collation is.
 */
import { qualifiedName, quoteIdent } from '../../pg/sql.js'
import { quoteLiteral } from './canonical.js'
import type { Typed } from './typed-ast.js'
import { formatValue, type Value } from './values.js'
import type { WhereType } from './where-types.js'

const ORDERING = new Set(['<', '<=', '>', '>='])

export function renderSql(node: Typed): string {
  const r = renderSql
  switch (node.kind) {
    case 'column':
      return quoteIdent(node.name)
    case 'const':
      return constant(node.type, node.value)
    case 'convert':
      return r(node.arg)
    case 'cast':
      return `CAST(${r(node.arg)} AS ${sqlType(node.type)})`
    case 'compare':
      return `(${collated(node.left, ORDERING.has(node.op))} ${node.op} ${r(node.right)})`
    case 'arith':
      return `(${r(node.left)} ${node.op} ${r(node.right)})`
    case 'negate':
      return `(- ${r(node.arg)})`
    case 'concat':
      return `(${r(node.left)} || ${r(node.right)})`
    case 'and':
    case 'or':
      return `(${node.args.map(r).join(node.kind === 'and' ? ' AND ' : ' OR ')})`
    case 'not':
      return `(NOT ${r(node.arg)})`
    case 'in':
    {
      // An untyped literal on the left takes its type from the list, as in PostgreSQL.
      const first = node.comparisons[0] as Extract<Typed, { kind: 'compare' }>
      const arg = node.arg.type.scalar === 'unknown' ? first.left : node.arg
      return `(${r(arg)} ${node.negated ? 'NOT IN' : 'IN'} (${node.list.map(r).join(', ')}))`
    }
    case 'isNull':
      return `(${r(node.arg)} IS ${node.negated ? 'NOT ' : ''}NULL)`
    case 'isBool':
      return `(${r(node.arg)} IS ${node.negated ? 'NOT ' : ''}${node.value.toUpperCase()})`
    case 'distinct':
      return `(${r(node.left)} IS ${node.negated ? 'NOT ' : ''}DISTINCT FROM ${r(node.right)})`
    case 'like':
      return `(${collated(node.arg, node.caseInsensitive)} ${node.negated ? 'NOT ' : ''}${node.caseInsensitive ? 'ILIKE' : 'LIKE'} ${r(node.pattern)})`
    case 'quantified':
      return `(${collated(node.left, ORDERING.has(node.op))} ${node.op} ${node.all ? 'ALL' : 'ANY'} (${r(node.right)}))`
    case 'arrayOp':
      return `(${r(node.left)} ${node.op} ${r(node.right)})`
    case 'array':
      return node.elements.length === 0 ? `CAST(ARRAY[] AS ${sqlType(node.type)})` : `ARRAY[${node.elements.map(r).join(', ')}]`
    case 'call':
      if (node.name === 'coalesce') return `COALESCE(${node.args.map(r).join(', ')})`
      return `pg_catalog.${node.name}(${node.name === 'lower' || node.name === 'upper' ? collated(node.args[0]!, true) : r(node.args[0]!)})`
    case 'subquery': {
      // Both sides as converted: PostgreSQL compares in the type the binder chose.
      const args = node.args.length === 1 ? r(node.args[0]!) : `ROW(${node.args.map(r).join(', ')})`
      const where = node.where ? ` WHERE ${r(node.where)}` : ''
      return `(${args} IN (SELECT ${node.columns.map(r).join(', ')} FROM ${qualifiedName(node.table.table)}${where}))`
    }
  }
}

function collated(node: Typed, pin: boolean): string {
  const sql = renderSql(node)
  return pin && node.type.scalar === 'text' && !node.type.array ? `(${sql} COLLATE "C")` : sql
}

function constant(type: WhereType, value: Value | null): string {
  // An enum literal stays untyped: PostgreSQL resolves it against the enum column it meets.
  if (type.scalar === 'enum') return value === null ? 'NULL' : quoteLiteral(formatValue(type, value))
  const target = type.scalar === 'unknown' ? { ...type, scalar: 'text' as const } : type
  if (value === null) return `CAST(NULL AS ${sqlType(target)})`
  return `CAST(${quoteLiteral(formatValue(target, value))} AS ${sqlType(target)})`
}

function sqlType(type: WhereType): string {
  const base = type.scalar === 'unknown' ? 'text' : type.scalar
  return `pg_catalog.${base}${type.array ? '[]' : ''}`
}
