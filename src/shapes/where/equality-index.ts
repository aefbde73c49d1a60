/**
 * Finds the `col = const` / `col IN (consts)` part of a where clause (alone or as one side of
 * an AND), so the router can find the shape by hash lookup on the changed row's value instead
 * of evaluating every shape. Keys are normalized text: a row's value and a constant that
 * PostgreSQL considers equal get the same key (`1.50` and `1.5` for numeric). Only types whose
 * equality is exactly "same key" are indexed; the rest are scanned, which is always correct.
 */
import { formatDecimal, parseDecimal, type Decimal } from './decimal.js'
import type { Typed } from './typed-ast.js'
import { convertScalar, formatScalar, type ScalarValue } from './values.js'
import { INTEGERS, type WhereType } from './where-types.js'

export interface EqualityIndex {
  readonly column: string
  /** Keys of the values the column must equal for the where clause to hold. */
  readonly values: readonly string[]
  /** The key of a row's text value of this column (null: the row cannot match). */
  readonly keyOf: (text: string) => string | null
}

const EXACT_TEXT = new Set(['text', 'uuid', 'bool', 'enum'])

export function findEqualityIndex(node: Typed): EqualityIndex | undefined {
  if (node.kind === 'and') {
    for (const arg of node.args) {
      const found = findEqualityIndex(arg)
      if (found) return found
    }
    return undefined
  }
  if (node.kind === 'compare' && node.op === '=') {
    return fromPairs([[node.left, node.right]]) ?? fromPairs([[node.right, node.left]])
  }
  if (node.kind === 'in' && !node.negated) {
    const pairs = node.comparisons.map((c) => {
      const cmp = c as Extract<Typed, { kind: 'compare' }>
      return [cmp.left, cmp.right] as const
    })
    return fromPairs(pairs)
  }
  return undefined
}

function fromPairs(pairs: readonly (readonly [Typed, Typed])[]): EqualityIndex | undefined {
  let column: { name: string; type: WhereType } | undefined
  const values: string[] = []
  for (const [side, other] of pairs) {
    const col = side.kind === 'convert' ? side.arg : side
    if (col.kind !== 'column' || col.type.array || other.kind !== 'const') return undefined
    if (column && column.name !== col.name) return undefined
    column = { name: col.name, type: col.type }
    if (other.value === null) continue // `= NULL` never holds
    const key = constantKey(col.type, side.type, other.value as ScalarValue)
    if (key === undefined) return undefined
    values.push(key)
  }
  if (!column) return undefined
  const keyOf = rowKeyFunction(column.type)
  return keyOf ? { column: column.name, values, keyOf } : undefined
}

/** Key of a constant compared with the column in type `compareType`. */
function constantKey(columnType: WhereType, compareType: WhereType, value: ScalarValue): string | undefined {
  if (EXACT_TEXT.has(columnType.scalar)) return compareType.scalar === columnType.scalar ? formatScalar(columnType, value) : undefined
  if (INTEGERS.has(columnType.scalar) || columnType.scalar === 'numeric') {
    if (!INTEGERS.has(compareType.scalar) && compareType.scalar !== 'numeric') return undefined
    return numericKey(convertScalar(compareType, { scalar: 'numeric', array: false }, value) as Decimal)
  }
  return undefined
}

function rowKeyFunction(type: WhereType): ((text: string) => string | null) | undefined {
  if (EXACT_TEXT.has(type.scalar)) return (text) => text
  if (INTEGERS.has(type.scalar)) return (text) => text
  if (type.scalar === 'numeric') {
    return (text) => {
      const value = parseDecimal(text)
      return value ? numericKey(value) : null
    }
  }
  return undefined
}

/** Equal numerics, one key: no trailing fractional zeros, no negative zero. */
export function numericKey(value: Decimal): string {
  if (value.kind !== 'finite') return formatDecimal(value)
  let { digits, scale } = value
  while (scale > 0 && digits % 10n === 0n) {
    digits /= 10n
    scale--
  }
  return formatDecimal({ kind: 'finite', digits, scale })
}
