/**
 * Values of the `where` types in TypeScript, read from PostgreSQL text (column values arrive as
 * text output; literals and params are text too), compared with PostgreSQL's rules, printed
 * back as text output, and converted between types as PostgreSQL's casts do.
 */
import { formatArrayText, parseArrayText } from './array-text.js'
import {
  compareDecimals,
  decimalFromBigInt,
  decimalFromFloat4,
  decimalFromNumber,
  decimalToNumber,
  formatDecimal,
  parseDecimal,
  roundDecimalToBigInt,
  type Decimal,
} from './decimal.js'
import { dateToTimestamp, DATE_NEG_INFINITY, DATE_POS_INFINITY, formatDate, formatTimestamp, parseDate, parseTimestamp, TS_NEG_INFINITY, TS_POS_INFINITY } from './datetime.js'
import { elementOf, INTEGERS, type Scalar, type WhereType } from './where-types.js'

export interface ArrayValue {
  readonly elements: readonly (ScalarValue | null)[]
  readonly dims: readonly number[]
  readonly lowerBounds: readonly number[]
}
export type ScalarValue = bigint | Decimal | number | boolean | string
export type Value = ScalarValue | ArrayValue

/** A run-time error PostgreSQL would raise (overflow, division by zero, bad input to a cast). */
export class EvaluationError extends Error {}

const INT_TEXT = /^\s*[+-]?\d+\s*$/
const FLOAT_TEXT = /^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$/
const UUID_TEXT = /^[0-9a-f]{4}(-?[0-9a-f]{4}){7}$/i
const INT_RANGE: Readonly<Record<string, readonly [bigint, bigint]>> = {
  int2: [-(2n ** 15n), 2n ** 15n - 1n],
  int4: [-(2n ** 31n), 2n ** 31n - 1n],
  int8: [-(2n ** 63n), 2n ** 63n - 1n],
}
const FLOAT4_MAX = 3.4028234663852886e38

export function checkInt(value: bigint, scalar: Scalar): bigint {
  const [min, max] = INT_RANGE[scalar]!
  if (value < min || value > max) throw new EvaluationError(`${scalar === 'int8' ? 'bigint' : scalar === 'int4' ? 'integer' : 'smallint'} out of range`)
  return value
}

export function checkFloat4(value: number, inputsFinite: boolean): number {
  const rounded = Math.fround(value)
  if (inputsFinite && !Number.isFinite(rounded) && !Number.isNaN(value)) throw new EvaluationError('value out of range: overflow')
  if (Math.abs(value) > FLOAT4_MAX && Number.isFinite(value)) throw new EvaluationError('value out of range: overflow')
  if (rounded === 0 && value !== 0) throw new EvaluationError('value out of range: underflow')
  return rounded
}

function parseBool(text: string): boolean | undefined {
  const t = text.trim().toLowerCase()
  if (t.length === 0) return undefined
  for (const [word, value] of [['true', true], ['false', false], ['yes', true], ['no', false]] as const) {
    if (word.startsWith(t)) return value
  }
  if (t === 'on') return true
  if (t === 'off' || t === 'of') return false
  if (t === '1') return true
  if (t === '0') return false
  return undefined
}

function parseFloat(text: string): number | undefined {
  const t = text.trim().toLowerCase()
  if (t === 'nan') return NaN
  if (t === 'infinity' || t === '+infinity' || t === 'inf' || t === '+inf') return Infinity
  if (t === '-infinity' || t === '-inf') return -Infinity
  return FLOAT_TEXT.test(text) ? Number(text) : undefined
}

/** Reads a scalar from text input; undefined when PostgreSQL would reject the text. */
export function parseScalar(type: WhereType, text: string): ScalarValue | undefined {
  switch (type.scalar) {
    case 'int2':
    case 'int4':
    case 'int8': {
      if (!INT_TEXT.test(text)) return undefined
      const value = BigInt(text.trim())
      const [min, max] = INT_RANGE[type.scalar]!
      return value < min || value > max ? undefined : value
    }
    case 'numeric':
      return parseDecimal(text)
    case 'float8':
      return parseFloat(text)
    case 'float4': {
      const value = parseFloat(text)
      if (value === undefined) return undefined
      const rounded = Math.fround(value)
      if (Number.isFinite(value) && (!Number.isFinite(rounded) || (rounded === 0 && value !== 0))) return undefined
      return rounded
    }
    case 'bool':
      return parseBool(text)
    case 'text':
    case 'unknown':
      return text
    case 'enum':
      return type.enumLabels?.includes(text) ? text : undefined
    case 'uuid': {
      let t = text.trim()
      if (t.startsWith('{') && t.endsWith('}')) t = t.slice(1, -1)
      if (!UUID_TEXT.test(t)) return undefined
      const hex = t.replaceAll('-', '').toLowerCase()
      return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`
    }
    case 'date':
      return parseDate(text)
    case 'timestamp':
      return parseTimestamp(text, false)
    case 'timestamptz':
      return parseTimestamp(text, true)
  }
}

/** Reads a value of `type` (scalar or array) from text; undefined when malformed. */
export function parseValue(type: WhereType, text: string): Value | undefined {
  if (!type.array) return parseScalar(type, text)
  const parsed = parseArrayText(text)
  if (!parsed) return undefined
  const element = elementOf(type)
  const elements: (ScalarValue | null)[] = []
  for (const e of parsed.elements) {
    if (e === null) elements.push(null)
    else {
      const value = parseScalar(element, e)
      if (value === undefined) return undefined
      elements.push(value)
    }
  }
  return { elements, dims: parsed.dims, lowerBounds: parsed.lowerBounds }
}

/** Text output of a scalar, as the type's output function prints it. */
export function formatScalar(type: WhereType, value: ScalarValue): string {
  switch (type.scalar) {
    case 'int2':
    case 'int4':
    case 'int8':
      return String(value)
    case 'numeric':
      return formatDecimal(value as Decimal)
    case 'bool':
      return value ? 't' : 'f'
    case 'date':
      return formatDate(value as number)
    case 'timestamp':
      return formatTimestamp(value as bigint, false)
    case 'timestamptz':
      return formatTimestamp(value as bigint, true)
    case 'float4':
    case 'float8':
      // Only used for literals in rebuilt SQL: the shortest text that reads back exactly.
      return Number.isNaN(value) ? 'NaN' : value === Infinity ? 'Infinity' : value === -Infinity ? '-Infinity' : String(value)
    default:
      return value as string
  }
}

export function formatValue(type: WhereType, value: Value): string {
  if (!type.array) return formatScalar(type, value as ScalarValue)
  const array = value as ArrayValue
  const element = elementOf(type)
  return formatArrayText({
    elements: array.elements.map((e) => (e === null ? null : formatScalar(element, e))),
    dims: array.dims,
    lowerBounds: array.lowerBounds,
  })
}

/** PostgreSQL's float order: NaN equals NaN and sorts above everything; -0 equals 0. */
function compareFloats(a: number, b: number): number {
  if (Number.isNaN(a)) return Number.isNaN(b) ? 0 : 1
  if (Number.isNaN(b)) return -1
  return a < b ? -1 : a > b ? 1 : 0
}

/** Byte order of UTF-8, which is code point order: the C collation. */
function compareText(a: string, b: string): number {
  if (a === b) return 0
  const n = Math.min(a.length, b.length)
  for (let i = 0; i < n; i++) {
    const x = a.codePointAt(i)!
    const y = b.codePointAt(i)!
    if (x !== y) return x < y ? -1 : 1
    if (x > 0xffff) i++
  }
  return a.length < b.length ? -1 : 1
}

/** Compares two non-null scalars of `type` (both already converted to it). */
export function compareScalars(type: WhereType, a: ScalarValue, b: ScalarValue): number {
  switch (type.scalar) {
    case 'int2':
    case 'int4':
    case 'int8':
    case 'timestamp':
    case 'timestamptz':
      return a < b ? -1 : a > b ? 1 : 0
    case 'date':
      return (a as number) - (b as number) < 0 ? -1 : a === b ? 0 : 1
    case 'numeric':
      return compareDecimals(a as Decimal, b as Decimal)
    case 'float4':
    case 'float8':
      return compareFloats(a as number, b as number)
    case 'bool':
      return a === b ? 0 : a ? 1 : -1
    case 'enum': {
      const labels = type.enumLabels ?? []
      return Math.sign(labels.indexOf(a as string) - labels.indexOf(b as string))
    }
    default:
      return compareText(a as string, b as string)
  }
}

/** `array_eq`: same dimensions, bounds and elements; NULL elements equal each other. */
export function arraysEqual(type: WhereType, a: ArrayValue, b: ArrayValue): boolean {
  if (a.dims.length !== b.dims.length || a.elements.length !== b.elements.length) return false
  if (a.dims.some((d, i) => d !== b.dims[i]) || a.lowerBounds.some((l, i) => l !== b.lowerBounds[i])) return false
  const element = elementOf(type)
  return a.elements.every((x, i) => {
    const y = b.elements[i]!
    if (x === null || y === null) return x === y
    return compareScalars(element, x, y) === 0
  })
}

/** Converts a non-null scalar from one type to another (an implicit or explicit cast). */
export function convertScalar(from: WhereType, to: WhereType, value: ScalarValue): ScalarValue {
  const f = from.scalar
  const t = to.scalar
  if (f === t && f !== 'enum') return value
  if (f === 'unknown' || (f === 'text' && t !== 'text') || (f === 'enum' && t === 'enum')) {
    const parsed = parseScalar(to, value as string)
    if (parsed === undefined) throw new EvaluationError(`invalid input syntax for type ${t}: ${JSON.stringify(value)}`)
    return parsed
  }
  if (t === 'text') {
    if (f === 'bool') return value ? 'true' : 'false'
    return formatScalar(from, value)
  }
  if (INTEGERS.has(f)) {
    if (INTEGERS.has(t)) return checkInt(value as bigint, t)
    if (t === 'numeric') return decimalFromBigInt(value as bigint)
    if (t === 'float8') return Number(value as bigint)
    if (t === 'float4') return Math.fround(Number(value as bigint))
  }
  if (f === 'numeric') {
    if (INTEGERS.has(t)) return checkInt(roundDecimalToBigInt(value as Decimal), t)
    if (t === 'float8') return decimalToNumber(value as Decimal)
    if (t === 'float4') return checkFloat4(decimalToNumber(value as Decimal), true)
  }
  if (f === 'float4' || f === 'float8') {
    const n = value as number
    if (INTEGERS.has(t)) {
      if (!Number.isFinite(n)) throw new EvaluationError(`${t} out of range`)
      return checkInt(BigInt(roundHalfEven(n)), t)
    }
    if (t === 'numeric') return f === 'float4' ? decimalFromFloat4(n) : decimalFromNumber(n)
    if (t === 'float8') return n
    if (t === 'float4') return checkFloat4(n, Number.isFinite(n))
  }
  if (f === 'date' && (t === 'timestamp' || t === 'timestamptz')) return dateToTimestamp(value as number)
  if ((f === 'timestamp' || f === 'timestamptz') && (t === 'timestamp' || t === 'timestamptz')) return value
  if ((f === 'timestamp' || f === 'timestamptz') && t === 'date') {
    const micros = value as bigint
    if (micros === TS_POS_INFINITY) return DATE_POS_INFINITY
    if (micros === TS_NEG_INFINITY) return DATE_NEG_INFINITY
    const day = 86_400_000_000n
    return Number(micros >= 0n ? micros / day : -((-micros + day - 1n) / day))
  }
  throw new EvaluationError(`cannot cast ${f} to ${t}`)
}

/** C's rint(): ties to even. */
function roundHalfEven(n: number): number {
  const r = Math.round(n)
  return Math.abs(n % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r
}

/** Which explicit casts `where` accepts (the rest are refused at compile time). */
export function canCast(from: WhereType, to: WhereType): boolean {
  if (from.array || to.array) return from.scalar === 'unknown' || (from.array && to.array && from.scalar === to.scalar && from.enumName === to.enumName)
  const f = from.scalar
  const t = to.scalar
  if (f === t || f === 'unknown') return true
  const numeric = (s: Scalar) => ['int2', 'int4', 'int8', 'numeric', 'float4', 'float8'].includes(s)
  if (numeric(f) && numeric(t)) return true
  if (t === 'text') return f !== 'float4' && f !== 'float8' && f !== 'timestamp' && f !== 'timestamptz'
  if (f === 'text') return t !== 'enum'
  if (f === 'date') return t === 'timestamp' || t === 'timestamptz'
  if (f === 'timestamp' || f === 'timestamptz') return t === 'date' || t === 'timestamp' || t === 'timestamptz'
  return false
}
