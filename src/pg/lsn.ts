/**
 * PostgreSQL log sequence numbers as 64-bit `bigint`s. The text form `16/B374D848` is only for
 * talking to PostgreSQL; on the wire Sluice writes LSNs as decimal integers.
 */
export type Lsn = bigint & { readonly __brand: 'Lsn' }

export const ZERO_LSN = 0n as Lsn

const LSN_TEXT = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/

export function lsn(value: bigint): Lsn {
  if (value < 0n || value > 0xffff_ffff_ffff_ffffn) throw new RangeError(`LSN out of range: ${value}`)
  return value as Lsn
}

export function parseLsn(text: string): Lsn {
  const match = LSN_TEXT.exec(text)
  if (!match) throw new Error(`Not an LSN: ${JSON.stringify(text)}`)
  return ((BigInt(`0x${match[1]}`) << 32n) | BigInt(`0x${match[2]}`)) as Lsn
}

export function formatLsn(value: Lsn): string {
  const high = (value >> 32n).toString(16).toUpperCase()
  const low = (value & 0xffff_ffffn).toString(16).toUpperCase()
  return `${high}/${low}`
}

export function maxLsn(a: Lsn, b: Lsn): Lsn {
  return a > b ? a : b
}
