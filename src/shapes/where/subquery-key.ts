/**
 * The key of a value compared by a subquery's `IN`: its text in the type both sides are
 * converted to, numerics without trailing fractional zeros, so values PostgreSQL finds equal get
 * one key, whether they come from an outer row, an inner row or PostgreSQL itself (`keySql`,
 * for the tags of snapshot rows). Only types whose equality is exactly that can be compared.
 */
import type { Decimal } from './decimal.js'
import { numericKey } from './equality-index.js'
import { formatScalar, type ScalarValue } from './values.js'
import { INTEGERS, type WhereType } from './where-types.js'

const KEYED: ReadonlySet<string> = new Set(['int2', 'int4', 'int8', 'numeric', 'text', 'uuid', 'bool', 'enum', 'date'])

export function isKeyable(type: WhereType): boolean {
  return !type.array && KEYED.has(type.scalar)
}

/** The key of a value of `type` (already converted to it). */
export function valueKey(type: WhereType, value: ScalarValue): string {
  if (type.scalar === 'numeric') return numericKey(value as Decimal)
  if (INTEGERS.has(type.scalar)) return String(value)
  return formatScalar(type, value)
}

/** SQL giving the same key as `valueKey` for an expression of `type` (pinned output settings). */
export function keySql(type: WhereType, sql: string): string {
  if (type.scalar === 'numeric') return `(pg_catalog.trim_scale(${sql}))::text`
  // bool's cast to text says `true`; its output (and the key) says `t`.
  if (type.scalar === 'bool') return `(CASE WHEN ${sql} THEN 't' WHEN NOT ${sql} THEN 'f' END)`
  return `(${sql})::text`
}
