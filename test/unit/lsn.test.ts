import { describe, expect, it } from 'vitest'
import { formatLsn, lsn, maxLsn, parseLsn, ZERO_LSN } from '../../src/pg/lsn.js'

describe('parseLsn / formatLsn', () => {
  it.each([
    ['0/0', 0n],
    ['0/1', 1n],
    ['0/FFFFFFFF', 0xffff_ffffn],
    ['1/0', 0x1_0000_0000n],
    ['16/B374D848', 0x16_b374_d848n],
    ['0/16B3F70', 0x16b3f70n],
    ['FFFFFFFF/FFFFFFFF', 0xffff_ffff_ffff_ffffn],
  ])('round-trips %s', (text, value) => {
    expect(parseLsn(text)).toBe(value)
    expect(formatLsn(parseLsn(text))).toBe(text)
  })

  it('accepts lower case and leading zeros, and formats upper case without them', () => {
    expect(parseLsn('16/b374d848')).toBe(0x16_b374_d848n)
    expect(parseLsn('ffffffff/ffffffff')).toBe(18446744073709551615n)
    expect(parseLsn('00000016/0B374D84')).toBe(0x16_0b37_4d84n)
    expect(formatLsn(parseLsn('16/b374d848'))).toBe('16/B374D848')
    expect(formatLsn(parseLsn('00000001/0000000A'))).toBe('1/A')
  })

  it('formats the decimal wire values PostgreSQL would print', () => {
    expect(formatLsn(lsn(26848344n))).toBe('0/199AC58')
    expect(formatLsn(lsn(4294967296n))).toBe('1/0')
    expect(formatLsn(ZERO_LSN)).toBe('0/0')
  })

  it.each([
    '',
    '0',
    '0/',
    '/0',
    '0//0',
    '0/0/0',
    '123456789/0',
    '0/123456789',
    '0x1/0',
    'G/0',
    '0/g',
    '-1/0',
    ' 0/0',
    '0/0 ',
    '0/0\n',
    '0 /0',
    '0:0',
    '１/０',
  ])('rejects %j', (text) => {
    expect(() => parseLsn(text)).toThrow(`Not an LSN: ${JSON.stringify(text)}`)
  })
})

describe('lsn', () => {
  it('accepts the 64-bit range and rejects outside it', () => {
    expect(lsn(0n)).toBe(0n)
    expect(lsn(0xffff_ffff_ffff_ffffn)).toBe(18446744073709551615n)
    expect(() => lsn(-1n)).toThrow(RangeError)
    expect(() => lsn(0x1_0000_0000_0000_0000n)).toThrow(RangeError)
  })
})

describe('maxLsn', () => {
  it('returns the larger LSN', () => {
    expect(maxLsn(lsn(5n), lsn(7n))).toBe(7n)
    expect(maxLsn(lsn(0x1_0000_0000n), lsn(0xffff_ffffn))).toBe(0x1_0000_0000n)
  })
})
