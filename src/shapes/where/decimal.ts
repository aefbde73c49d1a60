/**
 * PostgreSQL `numeric` in TypeScript without float rounding: a finite value is an integer
 * `digits` scaled by 10^-scale, where `scale` is PostgreSQL's display scale (so `1.50` keeps
 * scale 2 and prints back as `1.50`). NaN and ±Infinity are the special values PostgreSQL 14+
 * has; NaN sorts above everything and equals itself, as in PostgreSQL.
 */
export type Decimal =
  | { readonly kind: 'finite'; readonly digits: bigint; readonly scale: number }
  | { readonly kind: 'nan' }
  | { readonly kind: 'inf'; readonly negative: boolean }

const NUMERIC_TEXT = /^\s*([+-])?(\d+\.?\d*|\.\d+)(?:[eE]([+-]?\d+))?\s*$/
/** PostgreSQL's limit on the exponent in numeric input. */
const MAX_EXPONENT = 1000

/** Parses numeric input text (as `numeric_in` does); undefined when it is not a number. */
export function parseDecimal(text: string): Decimal | undefined {
  const special = text.trim().toLowerCase()
  if (special === 'nan') return { kind: 'nan' }
  if (special === 'infinity' || special === '+infinity' || special === 'inf' || special === '+inf') return { kind: 'inf', negative: false }
  if (special === '-infinity' || special === '-inf') return { kind: 'inf', negative: true }
  const match = NUMERIC_TEXT.exec(text)
  if (!match) return undefined
  const [, sign, body, exponentText] = match as unknown as [string, string | undefined, string, string | undefined]
  const exponent = exponentText === undefined ? 0 : Number(exponentText)
  if (Math.abs(exponent) > MAX_EXPONENT) return undefined
  const dot = body.indexOf('.')
  const fraction = dot === -1 ? '' : body.slice(dot + 1)
  const all = (dot === -1 ? body : body.slice(0, dot) + fraction) || '0'
  let digits = BigInt(all)
  let scale = fraction.length - exponent
  if (scale < 0) {
    digits *= 10n ** BigInt(-scale)
    scale = 0
  }
  return { kind: 'finite', digits: sign === '-' ? -digits : digits, scale }
}

export function decimalFromBigInt(value: bigint): Decimal {
  return { kind: 'finite', digits: value, scale: 0 }
}

/** `numeric_out`: digits with exactly `scale` fractional digits. */
export function formatDecimal(value: Decimal): string {
  if (value.kind === 'nan') return 'NaN'
  if (value.kind === 'inf') return value.negative ? '-Infinity' : 'Infinity'
  const negative = value.digits < 0n
  let text = (negative ? -value.digits : value.digits).toString()
  if (value.scale > 0) {
    text = text.padStart(value.scale + 1, '0')
    text = `${text.slice(0, -value.scale)}.${text.slice(-value.scale)}`
  }
  return negative ? `-${text}` : text
}

function rescale(value: { digits: bigint; scale: number }, scale: number): bigint {
  return value.digits * 10n ** BigInt(scale - value.scale)
}

/** -1, 0 or 1 with PostgreSQL's total order (NaN above +Infinity, NaN = NaN). */
export function compareDecimals(a: Decimal, b: Decimal): number {
  const rank = (d: Decimal) => (d.kind === 'nan' ? 2 : d.kind === 'inf' ? (d.negative ? -1 : 1) : 0)
  const ra = rank(a)
  const rb = rank(b)
  if (ra !== rb || ra !== 0) return Math.sign(ra - rb)
  const fa = a as Extract<Decimal, { kind: 'finite' }>
  const fb = b as Extract<Decimal, { kind: 'finite' }>
  const scale = Math.max(fa.scale, fb.scale)
  const x = rescale(fa, scale)
  const y = rescale(fb, scale)
  return x < y ? -1 : x > y ? 1 : 0
}

export class NumericError extends Error {}

export function addDecimals(a: Decimal, b: Decimal, subtract: boolean): Decimal {
  if (a.kind === 'nan' || b.kind === 'nan') return { kind: 'nan' }
  const bNeg = b.kind === 'inf' ? b.negative !== subtract : false
  if (a.kind === 'inf' && b.kind === 'inf') return a.negative === bNeg ? a : { kind: 'nan' }
  if (a.kind === 'inf') return a
  if (b.kind === 'inf') return { kind: 'inf', negative: bNeg }
  const scale = Math.max(a.scale, b.scale)
  const y = rescale(b, scale)
  return { kind: 'finite', digits: rescale(a, scale) + (subtract ? -y : y), scale }
}

export function multiplyDecimals(a: Decimal, b: Decimal): Decimal {
  if (a.kind === 'nan' || b.kind === 'nan') return { kind: 'nan' }
  if (a.kind === 'inf' || b.kind === 'inf') {
    const sign = (d: Decimal) => (d.kind === 'inf' ? (d.negative ? -1 : 1) : d.kind === 'finite' ? Math.sign(Number(d.digits)) : 0)
    const s = sign(a) * sign(b)
    return s === 0 ? { kind: 'nan' } : { kind: 'inf', negative: s < 0 }
  }
  return { kind: 'finite', digits: a.digits * b.digits, scale: a.scale + b.scale }
}

/** PostgreSQL's limits for the scale `select_div_scale` picks. */
const MIN_SIG_DIGITS = 16
const MAX_DISPLAY_SCALE = 1000

/**
 * `numeric_div`: the quotient rounded (half away from zero) to the scale PostgreSQL's
 * `select_div_scale` picks — at least 16 significant digits, at least either input's scale.
 */
export function divideDecimals(a: Decimal, b: Decimal): Decimal {
  if (a.kind === 'nan' || b.kind === 'nan') return { kind: 'nan' }
  if (a.kind === 'inf') {
    if (b.kind === 'inf') return { kind: 'nan' }
    if (b.digits === 0n) throw new NumericError('division by zero')
    return { kind: 'inf', negative: a.negative !== b.digits < 0n }
  }
  if (b.kind === 'inf') return { kind: 'finite', digits: 0n, scale: 0 }
  if (b.digits === 0n) throw new NumericError('division by zero')
  const scale = divisionScale(a, b)
  // a / b = (da·10^-sa) / (db·10^-sb); scaled by 10^scale: da·10^(sb+scale) / (db·10^sa).
  const numerator = a.digits * 10n ** BigInt(b.scale + scale)
  const denominator = b.digits * 10n ** BigInt(a.scale)
  const negative = numerator < 0n !== denominator < 0n
  const n = numerator < 0n ? -numerator : numerator
  const d = denominator < 0n ? -denominator : denominator
  const rounded = (2n * n + d) / (2n * d)
  return { kind: 'finite', digits: negative ? -rounded : rounded, scale }
}

/** `numeric_mod`: a − trunc(a / b)·b, at the larger of the two scales. */
export function moduloDecimals(a: Decimal, b: Decimal): Decimal {
  if (a.kind === 'nan' || b.kind === 'nan') return { kind: 'nan' }
  if (a.kind === 'inf') {
    if (b.kind === 'finite' && b.digits === 0n) throw new NumericError('division by zero')
    return { kind: 'nan' }
  }
  if (b.kind === 'inf') return a
  if (b.digits === 0n) throw new NumericError('division by zero')
  const scale = Math.max(a.scale, b.scale)
  const x = rescale(a, scale)
  const y = rescale(b, scale)
  return { kind: 'finite', digits: x % y, scale }
}

/** `select_div_scale`, with PostgreSQL's base-10000 digit groups worked out from the decimal form. */
function divisionScale(a: { digits: bigint; scale: number }, b: { digits: bigint; scale: number }): number {
  const [weightA, firstA] = leadingGroup(a)
  const [weightB, firstB] = leadingGroup(b)
  let quotientWeight = weightA - weightB
  if (firstA <= firstB) quotientWeight--
  const scale = Math.max(MIN_SIG_DIGITS - quotientWeight * 4, a.scale, b.scale, 0)
  return Math.min(scale, MAX_DISPLAY_SCALE)
}

/** Weight and value of the first non-zero base-10000 digit (0 and 0 for zero). */
function leadingGroup(value: { digits: bigint; scale: number }): [number, number] {
  const magnitude = value.digits < 0n ? -value.digits : value.digits
  if (magnitude === 0n) return [0, 0]
  const exponent = magnitude.toString().length - 1 - value.scale
  const weight = Math.floor(exponent / 4)
  const shift = -value.scale - 4 * weight
  const first = shift >= 0 ? magnitude * 10n ** BigInt(shift) : magnitude / 10n ** BigInt(-shift)
  return [weight, Number(first)]
}

export function negateDecimal(a: Decimal): Decimal {
  if (a.kind === 'nan') return a
  if (a.kind === 'inf') return { kind: 'inf', negative: !a.negative }
  return { kind: 'finite', digits: -a.digits, scale: a.scale }
}

export function absDecimal(a: Decimal): Decimal {
  if (a.kind === 'nan') return a
  if (a.kind === 'inf') return { kind: 'inf', negative: false }
  return { kind: 'finite', digits: a.digits < 0n ? -a.digits : a.digits, scale: a.scale }
}

/** numeric → integer: rounds half away from zero, like `numeric_int8`. */
export function roundDecimalToBigInt(a: Decimal): bigint {
  if (a.kind !== 'finite') throw new NumericError(`cannot convert ${formatDecimal(a)} to integer`)
  if (a.scale === 0) return a.digits
  const unit = 10n ** BigInt(a.scale)
  const negative = a.digits < 0n
  const magnitude = negative ? -a.digits : a.digits
  const rounded = (magnitude + unit / 2n) / unit
  return negative ? -rounded : rounded
}

/** numeric → float8: correctly rounded, as PostgreSQL's `strtod` of the text. */
export function decimalToNumber(a: Decimal): number {
  if (a.kind === 'nan') return NaN
  if (a.kind === 'inf') return a.negative ? -Infinity : Infinity
  return Number(formatDecimal(a))
}

/** float8 → numeric: PostgreSQL prints 15 significant digits (`%.15g`) and parses that. */
export function decimalFromNumber(value: number): Decimal {
  if (Number.isNaN(value)) return { kind: 'nan' }
  if (!Number.isFinite(value)) return { kind: 'inf', negative: value < 0 }
  return decimalFromGText(value.toPrecision(15))
}

/** float4 → numeric uses 6 significant digits (`FLT_DIG`). */
export function decimalFromFloat4(value: number): Decimal {
  if (!Number.isFinite(value)) return decimalFromNumber(value)
  return decimalFromGText(value.toPrecision(6))
}

/** `%g` drops trailing fractional zeros; toPrecision keeps them. */
function decimalFromGText(text: string): Decimal {
  const [mantissa, exponent] = text.split('e') as [string, string | undefined]
  const trimmed = mantissa.includes('.') ? mantissa.replace(/0+$/, '').replace(/\.$/, '') : mantissa
  return parseDecimal(exponent === undefined ? trimmed : `${trimmed}e${exponent}`)!
}
