import { describe, expect, it } from 'vitest'
import {
  BEFORE_ALL,
  compareOffsets,
  formatOffset,
  INF_OP,
  isSnapshotOffset,
  parseOffset,
  SNAPSHOT_END,
  SNAPSHOT_START,
  type Offset,
} from '../../src/protocol/offset.js'

const MAX_U64 = 18446744073709551615n

describe('parseOffset / formatOffset', () => {
  it.each([
    ['-1', { tx: -1n, op: 0 }],
    ['0_0', { tx: 0n, op: 0 }],
    ['0_1', { tx: 0n, op: 1 }],
    ['0_inf', { tx: 0n, op: 0xffff_ffff }],
    ['26848344_0', { tx: 26848344n, op: 0 }],
    ['26848344_inf', { tx: 26848344n, op: 4294967295 }],
    ['18446744073709551615_4294967294', { tx: MAX_U64, op: 4294967294 }],
    ['9007199254740993_7', { tx: 9007199254740993n, op: 7 }],
  ])('round-trips %s', (text, expected) => {
    const parsed = parseOffset(text)
    expect(parsed).toEqual(expected)
    expect(formatOffset(parsed!)).toBe(text)
  })

  it('rejects the very last offset, which has no successor key (a crafted offset gave a 500)', () => {
    expect(parseOffset('18446744073709551615_inf')).toBeUndefined()
  })

  it('keeps tx exact beyond 2^53 (no JS number on the way)', () => {
    expect(parseOffset('9007199254740993_0')?.tx).toBe(9007199254740993n)
    expect(formatOffset({ tx: 9007199254740993n, op: 0 })).toBe('9007199254740993_0')
  })

  it('names the well-known offsets', () => {
    expect(formatOffset(BEFORE_ALL)).toBe('-1')
    expect(formatOffset(SNAPSHOT_START)).toBe('0_0')
    expect(formatOffset(SNAPSHOT_END)).toBe('0_inf')
    expect(INF_OP).toBe(4294967295)
  })

  it('formats any negative tx as -1', () => {
    expect(formatOffset({ tx: -1n, op: 5 })).toBe('-1')
  })

  it.each([
    '',
    '01_0',
    '1_01',
    '00_0',
    '1_',
    '_1',
    '_',
    '1',
    '1_-1',
    '-1_0',
    '-2',
    '-0',
    '1.5_0',
    '1_1.5',
    '1e3_0',
    '0x10_0',
    ' 1_0',
    '1_0 ',
    '1_0\n',
    '1__0',
    '1_0_0',
    '1_INF',
    '1_Infinity',
    'inf_0',
    'now',
    'NaN_0',
    '+1_0',
    // tx > 2^64 - 1
    '18446744073709551616_0',
    '99999999999999999999_0',
    '100000000000000000000_0',
    // op > 2^32 - 1
    '1_4294967296',
    '1_9999999999',
    '1_10000000000',
    // digits that are not ASCII: Arabic-Indic, full-width
    '١_٠',
    '１_０',
    '1_٣',
  ])('rejects %j', (text) => {
    expect(parseOffset(text)).toBeUndefined()
  })
})

describe('compareOffsets', () => {
  /** In strictly increasing order. */
  const ordered: Offset[] = [
    BEFORE_ALL,
    { tx: 0n, op: 0 },
    { tx: 0n, op: 1 },
    { tx: 0n, op: 2 },
    { tx: 0n, op: 10 },
    { tx: 0n, op: 4294967294 },
    SNAPSHOT_END,
    { tx: 1n, op: 0 },
    { tx: 1n, op: 9 },
    { tx: 2n, op: 0 },
    { tx: 10n, op: 0 },
    { tx: 9007199254740992n, op: 3 },
    { tx: 9007199254740993n, op: 0 },
    { tx: MAX_U64, op: 0 },
    { tx: MAX_U64, op: 4294967294 },
    { tx: MAX_U64, op: INF_OP },
  ]

  it('orders every pair of a sorted list by (tx, op) numerically', () => {
    for (let i = 0; i < ordered.length; i++) {
      for (let j = 0; j < ordered.length; j++) {
        const sign = Math.sign(compareOffsets(ordered[i]!, ordered[j]!))
        expect([formatOffset(ordered[i]!), formatOffset(ordered[j]!), sign]).toEqual([
          formatOffset(ordered[i]!),
          formatOffset(ordered[j]!),
          Math.sign(i - j),
        ])
      }
    }
  })

  it('sorts parsed wire offsets numerically, not as strings', () => {
    const texts = ['10_0', '9_1', '0_inf', '-1', '9_10', '0_2', '100_0', '0_10', '9_2']
    const sorted = texts.map((t) => parseOffset(t)!).sort(compareOffsets).map(formatOffset)
    expect(sorted).toEqual(['-1', '0_2', '0_10', '0_inf', '9_1', '9_2', '9_10', '10_0', '100_0'])
  })

  it('is 0 for equal offsets from different objects', () => {
    expect(compareOffsets(parseOffset('5_3')!, { tx: 5n, op: 3 })).toBe(0)
    expect(compareOffsets(parseOffset('-1')!, BEFORE_ALL)).toBe(0)
  })
})

describe('isSnapshotOffset', () => {
  it('is true for -1 and tx 0, false for log offsets', () => {
    expect(isSnapshotOffset(BEFORE_ALL)).toBe(true)
    expect(isSnapshotOffset(SNAPSHOT_START)).toBe(true)
    expect(isSnapshotOffset(SNAPSHOT_END)).toBe(true)
    expect(isSnapshotOffset({ tx: 1n, op: 0 })).toBe(false)
  })
})
