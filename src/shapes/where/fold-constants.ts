/**
 * Constant folding as PostgreSQL's planner does it, so a constant part that fails (`1/0`) is a
 * 400 when the shape is created rather than an error in every snapshot query.
 */
import type { Typed } from './typed-ast.js'
import { buildEvaluator } from './evaluate.js'
import { EvaluationError } from './values.js'
import { whereErrorAt } from './where-error.js'

/**
 * Evaluates every subtree without columns now, as PostgreSQL's planner does: a constant part
 * that fails (`1/0`) would fail every snapshot query, so it is a 400 instead.
 */
export function foldConstants(node: Typed, strictNull = true): Typed {
  if (node.kind === 'const' || node.kind === 'column') return node
  // Its value depends on the inner table, never constant; only its outer values fold.
  if (node.kind === 'subquery') return { ...node, args: node.args.map((arg) => foldConstants(arg)) }
  // PostgreSQL turns `x IN (a, b)` into `x = ANY(...)`, which it does not simplify; a single
  // item becomes a plain `x = a`, which it does.
  if (node.kind === 'in' && node.list.length > 1) {
    const comparisons = node.comparisons.map((c) => foldConstants(c, false))
    node = { ...node, comparisons }
    if (!comparisons.every((c) => c.kind === 'const')) return node
  }
  // Like PostgreSQL's simplifier, AND/OR stop at a constant that decides them and COALESCE at a
  // constant that is not null: the arguments after it are never folded (nor can they fail).
  if (node.kind === 'and' || node.kind === 'or' || (node.kind === 'call' && node.name === 'coalesce')) {
    const args: Typed[] = []
    for (const arg of node.args) {
      const folded = foldConstants(arg)
      if (folded.kind === 'const') {
        if (node.kind === 'call' && folded.value !== null) return args.length === 0 ? folded : { ...node, args: [...args, folded] }
        if (node.kind !== 'call' && folded.value === (node.kind === 'or')) return folded
      }
      args.push(folded)
    }
    node = { ...node, args }
  }
  const folded = node.kind === 'in' && node.list.length > 1 ? node : mapChildren(node, (child) => foldConstants(child))
  // A strict operator or function with a NULL constant argument is NULL, without evaluating
  // its other arguments (which might fail): PostgreSQL's planner does the same.
  if (strictNull && isStrict(folded) && childrenOf(folded).some((c) => c.kind === 'const' && c.value === null)) {
    return { kind: 'const', value: null, type: folded.type, at: folded.at }
  }
  if (!childrenOf(folded).every((c) => c.kind === 'const')) return folded
  try {
    return { kind: 'const', value: buildEvaluator(folded)({}), type: folded.type, at: folded.at }
  } catch (error) {
    if (error instanceof EvaluationError) {
      throw whereErrorAt(folded.at, error.message)
    }
    throw error
  }
}

const STRICT_KINDS: ReadonlySet<Typed['kind']> = new Set(['compare', 'arith', 'negate', 'concat', 'like', 'arrayOp', 'cast', 'convert'])

function isStrict(node: Typed): boolean {
  return STRICT_KINDS.has(node.kind) || (node.kind === 'call' && node.name !== 'coalesce')
}

function childrenOf(node: Typed): readonly Typed[] {
  switch (node.kind) {
    case 'const':
    case 'column':
      return []
    case 'convert':
    case 'cast':
    case 'negate':
    case 'not':
    case 'isNull':
    case 'isBool':
      return [node.arg]
    case 'like':
      return [node.arg, node.pattern]
    case 'in':
      return node.comparisons
    case 'and':
    case 'or':
    case 'call':
    case 'subquery':
      return node.args
    case 'array':
      return node.elements
    default:
      return [node.left, node.right]
  }
}

function mapChildren(node: Typed, f: (n: Typed) => Typed): Typed {
  switch (node.kind) {
    case 'const':
    case 'column':
      return node
    case 'convert':
    case 'cast':
    case 'negate':
    case 'not':
    case 'isNull':
    case 'isBool':
      return { ...node, arg: f(node.arg) }
    case 'like':
      return { ...node, arg: f(node.arg), pattern: f(node.pattern) }
    case 'in': {
      return { ...node, list: node.list.map(f), comparisons: node.comparisons.map(f) }
    }
    case 'and':
    case 'or':
    case 'call':
    case 'subquery':
      return { ...node, args: node.args.map(f) }
    case 'array':
      return { ...node, elements: node.elements.map(f) }
    default:
      return { ...node, left: f(node.left), right: f(node.right) }
  }
}
