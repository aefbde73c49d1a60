/**
 * The types a `where` clause can use, how a catalog column maps onto them, and PostgreSQL's
 * implicit-conversion rules for the operators we support (which type both sides of a
 * comparison or an arithmetic operator are converted to). `unknown` is the type of a quoted
 * literal or `$n` parameter before its context decides, as in PostgreSQL.
 */
import type { ColumnInfo } from '../../pg/introspect.js'

export const SCALARS = {
  int2: 'int2',
  int4: 'int4',
  int8: 'int8',
  numeric: 'numeric',
  float4: 'float4',
  float8: 'float8',
  bool: 'bool',
  text: 'text',
  uuid: 'uuid',
  date: 'date',
  timestamp: 'timestamp',
  timestamptz: 'timestamptz',
  enum: 'enum',
  unknown: 'unknown',
} as const
export type Scalar = (typeof SCALARS)[keyof typeof SCALARS]

export interface WhereType {
  readonly scalar: Scalar
  readonly array: boolean
  /** For enums: the type's name and its labels in sort order. */
  readonly enumName?: string
  readonly enumLabels?: readonly string[]
}

export const UNKNOWN: WhereType = { scalar: 'unknown', array: false }
export const BOOL: WhereType = { scalar: 'bool', array: false }
export const TEXT: WhereType = { scalar: 'text', array: false }
export const INT4: WhereType = { scalar: 'int4', array: false }

export const scalarType = (scalar: Scalar): WhereType => ({ scalar, array: false })
export const elementOf = (type: WhereType): WhereType => ({ ...type, array: false })
export const arrayOf = (type: WhereType): WhereType => ({ ...type, array: true })

/** Catalog type names of the scalars a column can have (`varchar` compares as `text`). */
const { enum: _enum, unknown: _unknown, ...NAMED_SCALARS } = SCALARS
const COLUMN_TYPES: Readonly<Record<string, Scalar>> = { ...NAMED_SCALARS, varchar: SCALARS.text }

/** The column's type, or undefined when `where` cannot use columns of that type. */
export function columnType(column: ColumnInfo): WhereType | undefined {
  const array = column.dims > 0
  if (column.enumLabels) return { scalar: 'enum', array, enumName: column.typeName, enumLabels: column.enumLabels }
  const scalar = COLUMN_TYPES[column.typeName]
  return scalar ? { scalar, array } : undefined
}

/** Type names accepted in casts (after PostgreSQL's own alias folding): the same as columns. */
export const CAST_TYPES: Readonly<Record<string, Scalar>> = COLUMN_TYPES

export const INTEGERS: ReadonlySet<Scalar> = new Set(['int2', 'int4', 'int8'])
export const NUMBERS: ReadonlySet<Scalar> = new Set(['int2', 'int4', 'int8', 'numeric', 'float4', 'float8'])
export const DATETIMES: ReadonlySet<Scalar> = new Set(['date', 'timestamp', 'timestamptz'])
const INT_RANK: Readonly<Record<string, number>> = { int2: 1, int4: 2, int8: 3 }

export function typeName(type: WhereType): string {
  const base = type.scalar === 'enum' ? type.enumName! : type.scalar
  return type.array ? `${base}[]` : base
}

export function sameType(a: WhereType, b: WhereType): boolean {
  return a.scalar === b.scalar && a.array === b.array && a.enumName === b.enumName
}

/**
 * The type two scalar operands are compared or combined in, following PostgreSQL's operator
 * resolution for the built-in operators; undefined when PostgreSQL has no such operator.
 */
export function commonScalar(a: WhereType, b: WhereType): WhereType | undefined {
  if (a.array || b.array) return undefined
  if (a.scalar === 'unknown' && b.scalar === 'unknown') return TEXT
  if (a.scalar === 'unknown') return b
  if (b.scalar === 'unknown') return a
  const x = a.scalar
  const y = b.scalar
  if (NUMBERS.has(x) && NUMBERS.has(y)) {
    if (x === 'float4' && y === 'float4') return scalarType('float4')
    if (x.startsWith('float') || y.startsWith('float')) return scalarType('float8')
    if (x === 'numeric' || y === 'numeric') return scalarType('numeric')
    return scalarType(INT_RANK[x]! >= INT_RANK[y]! ? x : y)
  }
  if (DATETIMES.has(x) && DATETIMES.has(y)) {
    if (x === 'timestamptz' || y === 'timestamptz') return scalarType('timestamptz')
    if (x === 'timestamp' || y === 'timestamp') return scalarType('timestamp')
    return scalarType('date')
  }
  if (x === y && (x !== 'enum' || a.enumName === b.enumName)) return a
  return undefined
}

/** Common type of two operands that may be arrays: arrays only match arrays of the same type. */
export function commonType(a: WhereType, b: WhereType): WhereType | undefined {
  if (a.scalar === 'unknown' && !a.array) return b.scalar === 'unknown' ? TEXT : b
  if (b.scalar === 'unknown' && !b.array) return a
  if (a.array !== b.array) return undefined
  if (!a.array) return commonScalar(a, b)
  return sameType(a, b) ? a : undefined
}
