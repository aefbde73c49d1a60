import { describe, expect, it } from 'vitest'
import { nextCursor } from '../../src/http/cursor.js'

// electric-cursor counts 20 s intervals since 2024-10-09T00:00:00Z.
const EPOCH_MS = Date.UTC(2024, 9, 9)
const at = (interval: number, intoIntervalMs = 0) => EPOCH_MS + interval * 20_000 + intoIntervalMs

describe('nextCursor', () => {
  it('is the number of the current 20 s interval without a client cursor', () => {
    expect(nextCursor(EPOCH_MS, undefined)).toBe('0')
    expect(nextCursor(at(0, 19_999), undefined)).toBe('0')
    expect(nextCursor(at(1), undefined)).toBe('1')
    expect(nextCursor(at(2_000_000, 7_000), undefined)).toBe('2000000')
    // 2025-01-01T00:00:00Z is 84 days = 362880 intervals after the epoch.
    expect(nextCursor(Date.UTC(2025, 0, 1), undefined)).toBe('362880')
  })

  it('is the interval number when the client cursor is older', () => {
    expect(nextCursor(at(100, 5), '0')).toBe('100')
    expect(nextCursor(at(100, 5), '99')).toBe('100')
  })

  it('is always greater than the cursor the client sent', () => {
    expect(nextCursor(at(100), '100')).toBe('101')
    expect(nextCursor(at(100), '101')).toBe('102')
    expect(nextCursor(at(100), '5000')).toBe('5001')
    expect(nextCursor(at(100), '99999999999999999999')).toBe('100000000000000000000')
  })

  it('gives clients in one interval the same cursor', () => {
    expect(nextCursor(at(42, 1), '41')).toBe(nextCursor(at(42, 19_000), undefined))
  })

  it.each(['', 'abc', '-5', '1.5', '1e9', ' 7', '7 ', '0x10', '٣', '123456789012345678901'])(
    'ignores the junk cursor %j',
    (junk) => {
      expect(nextCursor(at(100, 3), junk)).toBe('100')
    },
  )
})
