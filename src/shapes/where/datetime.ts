/**
 * `date`, `timestamp` and `timestamptz` as numbers PostgreSQL would compare the same way:
 * dates as days since 1970-01-01, timestamps as microseconds since 1970-01-01 00:00 UTC
 * (bigint: they pass 2^53). Infinities use PostgreSQL's own sentinels (the extreme values).
 *
 * Column values arrive in the pinned output style (`DateStyle=ISO`, `TimeZone=UTC`), so one
 * ISO grammar reads them. Literals in a `where` must use the same ISO grammar: PostgreSQL's
 * other input forms (`now`, `today`, `Jan 2 2020`, DMY-dependent ones) are refused rather than
 * guessed, because the two evaluations must agree.
 */
export const DATE_NEG_INFINITY = -(2 ** 31)
export const DATE_POS_INFINITY = 2 ** 31 - 1
export const TS_NEG_INFINITY = -(2n ** 63n)
export const TS_POS_INFINITY = 2n ** 63n - 1n

const MICROS_PER_DAY = 86_400_000_000n

const ISO =
  /^(\d{4,})-(\d{2})-(\d{2})(?:[ T](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,6}))?)?)?(?:\s*(Z|z|[+-]\d{2}(?::?\d{2}(?::?\d{2})?)?))?( BC)?$/

interface Parts {
  readonly days: number
  readonly micros: bigint
  readonly hasTime: boolean
  /** Seconds east of UTC; undefined when the text has no zone. */
  readonly offsetSeconds: number | undefined
}

/** Days from 1970-01-01 to a proleptic Gregorian date (year 0 = 1 BC). */
function daysFromCivil(year: number, month: number, day: number): number {
  const y = month <= 2 ? year - 1 : year
  const era = Math.floor(y / 400)
  const yoe = y - era * 400
  const doy = Math.floor((153 * (month + (month > 2 ? -3 : 9)) + 2) / 5) + day - 1
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy
  return era * 146097 + doe - 719468
}

function daysInMonth(year: number, month: number): number {
  if (month === 2) return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0 ? 29 : 28
  return [4, 6, 9, 11].includes(month) ? 30 : 31
}

function parseIso(text: string): Parts | undefined {
  const m = ISO.exec(text.trim())
  if (!m) return undefined
  let year = Number(m[1])
  const month = Number(m[2])
  const day = Number(m[3])
  if (m[9] !== undefined) {
    if (year === 0) return undefined
    year = 1 - year
  }
  if (month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month)) return undefined
  const hour = Number(m[4] ?? 0)
  const minute = Number(m[5] ?? 0)
  const second = Number(m[6] ?? 0)
  if (hour > 23 || minute > 59 || second > 59) return undefined
  const micros =
    BigInt(((hour * 60 + minute) * 60 + second) * 1_000_000) + BigInt((m[7] ?? '').padEnd(6, '0') || '0')
  let offsetSeconds: number | undefined
  const zone = m[8]
  if (zone !== undefined) {
    if (zone === 'Z' || zone === 'z') offsetSeconds = 0
    else {
      const digits = zone.slice(1).replaceAll(':', '')
      const h = Number(digits.slice(0, 2))
      const mi = Number(digits.slice(2, 4) || '0')
      const s = Number(digits.slice(4, 6) || '0')
      if (h > 15 || mi > 59 || s > 59) return undefined
      offsetSeconds = (zone[0] === '-' ? -1 : 1) * (h * 3600 + mi * 60 + s)
    }
  }
  return { days: daysFromCivil(year, month, day), micros, hasTime: m[4] !== undefined, offsetSeconds }
}

function infinity(text: string): 1 | -1 | undefined {
  const t = text.trim().toLowerCase()
  if (t === 'infinity' || t === '+infinity') return 1
  if (t === '-infinity') return -1
  return undefined
}

/** A `date` value; undefined when the text is not an ISO date. */
export function parseDate(text: string): number | undefined {
  const inf = infinity(text)
  if (inf !== undefined) return inf > 0 ? DATE_POS_INFINITY : DATE_NEG_INFINITY
  const parts = parseIso(text)
  if (!parts || parts.hasTime || parts.offsetSeconds !== undefined) return undefined
  return parts.days
}

/**
 * A `timestamp` (zone = false: an offset in the text is ignored, as PostgreSQL does) or a
 * `timestamptz` (zone = true: the offset applies; none means the session zone, UTC).
 */
export function parseTimestamp(text: string, zone: boolean): bigint | undefined {
  const inf = infinity(text)
  if (inf !== undefined) return inf > 0 ? TS_POS_INFINITY : TS_NEG_INFINITY
  const parts = parseIso(text)
  if (!parts) return undefined
  let micros = BigInt(parts.days) * MICROS_PER_DAY + parts.micros
  if (zone && parts.offsetSeconds !== undefined) micros -= BigInt(parts.offsetSeconds) * 1_000_000n
  return micros
}

export function dateToTimestamp(days: number): bigint {
  if (days === DATE_POS_INFINITY) return TS_POS_INFINITY
  if (days === DATE_NEG_INFINITY) return TS_NEG_INFINITY
  return BigInt(days) * MICROS_PER_DAY
}

/** `date_out` in ISO style: `YYYY-MM-DD`, ` BC` for years before 1. */
export function formatDate(days: number): string {
  if (days === DATE_POS_INFINITY) return 'infinity'
  if (days === DATE_NEG_INFINITY) return '-infinity'
  const z = days + 719468
  const era = Math.floor(z / 146097)
  const doe = z - era * 146097
  const yoe = Math.floor((doe - Math.floor(doe / 1460) + Math.floor(doe / 36524) - Math.floor(doe / 146096)) / 365)
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100))
  const mp = Math.floor((5 * doy + 2) / 153)
  const day = doy - Math.floor((153 * mp + 2) / 5) + 1
  const month = mp < 10 ? mp + 3 : mp - 9
  const year = yoe + era * 400 + (month <= 2 ? 1 : 0)
  const pad = (n: number, w: number) => String(n).padStart(w, '0')
  const body = `${pad(year > 0 ? year : 1 - year, 4)}-${pad(month, 2)}-${pad(day, 2)}`
  return year > 0 ? body : `${body} BC`
}

/** Canonical literal text for a timestamp (UTC, ISO) so equal values render equally. */
export function formatTimestamp(micros: bigint, zone: boolean): string {
  if (micros === TS_POS_INFINITY) return 'infinity'
  if (micros === TS_NEG_INFINITY) return '-infinity'
  let days = micros / MICROS_PER_DAY
  let rest = micros % MICROS_PER_DAY
  if (rest < 0n) {
    rest += MICROS_PER_DAY
    days -= 1n
  }
  const date = formatDate(Number(days))
  const bc = date.endsWith(' BC')
  const seconds = Number(rest / 1_000_000n)
  const fraction = rest % 1_000_000n
  const pad = (n: number) => String(n).padStart(2, '0')
  let time = `${pad(Math.floor(seconds / 3600))}:${pad(Math.floor(seconds / 60) % 60)}:${pad(seconds % 60)}`
  if (fraction > 0n) time += `.${String(fraction).padStart(6, '0').replace(/0+$/, '')}`
  return `${bc ? date.slice(0, -3) : date} ${time}${zone ? '+00' : ''}${bc ? ' BC' : ''}`
}
