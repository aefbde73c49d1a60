/**
 * The canonical text of a parsed `where`: one spelling per syntax tree (fully parenthesized,
 * keywords upper case, identifiers quoted, parameters inlined as quoted literals), so clauses
 * that differ only in spacing, keyword case, redundant parentheses or params-versus-inline
 * literals give one shape. It is itself a valid clause that parses back to the same tree,
 * which is how stored shapes are compiled again after a restart.
 */
import { qualifiedName, quoteIdent } from '../../pg/sql.js'
import type { WhereNode } from './where-ast.js'

export function canonicalWhere(node: WhereNode): string {
  const r = canonicalWhere
  switch (node.kind) {
    case 'column':
      return quoteIdent(node.name)
    case 'literal':
      switch (node.literal) {
        case 'string':
          return quoteLiteral(node.text)
        case 'boolean':
          return node.text === 'true' ? 'TRUE' : 'FALSE'
        case 'null':
          return 'NULL'
        default:
          return node.text
      }
    case 'binary':
      return `(${r(node.left)} ${node.op} ${r(node.right)})`
    case 'negate':
      return `(- ${r(node.arg)})`
    case 'and':
    case 'or':
      return `(${node.args.map(r).join(node.kind === 'and' ? ' AND ' : ' OR ')})`
    case 'not':
      return `(NOT ${r(node.arg)})`
    case 'in':
      return `(${r(node.arg)} ${node.negated ? 'NOT IN' : 'IN'} (${node.list.map(r).join(', ')}))`
    case 'between':
      return `(${r(node.arg)} ${node.negated ? 'NOT ' : ''}BETWEEN ${node.symmetric ? 'SYMMETRIC ' : ''}${r(node.low)} AND ${r(node.high)})`
    case 'isNull':
      return `(${r(node.arg)} IS ${node.negated ? 'NOT ' : ''}NULL)`
    case 'isBool':
      return `(${r(node.arg)} IS ${node.negated ? 'NOT ' : ''}${node.value.toUpperCase()})`
    case 'distinct':
      return `(${r(node.left)} IS ${node.negated ? 'NOT ' : ''}DISTINCT FROM ${r(node.right)})`
    case 'like':
      return `(${r(node.arg)} ${node.negated ? 'NOT ' : ''}${node.caseInsensitive ? 'ILIKE' : 'LIKE'} ${r(node.pattern)})`
    case 'cast':
      return `CAST(${r(node.arg)} AS ${node.typeName}${node.array ? '[]' : ''})`
    case 'quantified':
      return `(${r(node.left)} ${node.op} ${node.all ? 'ALL' : 'ANY'} (${r(node.right)}))`
    case 'array':
      return `ARRAY[${node.elements.map(r).join(', ')}]`
    case 'call':
      return `${node.name === 'coalesce' ? 'COALESCE' : node.name}(${node.args.map(r).join(', ')})`
    case 'subquery': {
      const args = node.args.length === 1 ? r(node.args[0]!) : `(${node.args.map(r).join(', ')})`
      const where = node.where ? ` WHERE ${r(node.where)}` : ''
      return `(${args} IN (SELECT ${node.columns.map(r).join(', ')} FROM ${qualifiedName(node.table)}${where}))`
    }
  }
}

/** A standard-conforming string literal (backslashes are literal characters). */
export function quoteLiteral(text: string): string {
  return `'${text.replaceAll("'", "''")}'`
}
