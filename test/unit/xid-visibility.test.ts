import { describe, expect, it } from 'vitest'
import type { Lsn } from '../../src/pg/lsn.js'
import {
  commitsAfterSnapshot,
  isVisibleInSnapshot,
  parseSnapshotText,
  visibilityOf,
  type Visibility,
} from '../../src/shapes/xid-visibility.js'

/** The xid rule, as for shapes stored without the snapshot's LSN. */
const isAtOrAfterXmax = (xid: number, visibility: Visibility) => commitsAfterSnapshot({ xid, commitLsn: 0n as Lsn }, visibility)

describe('parseSnapshotText', () => {
  it('parses xmin, xmax and the in-progress list', () => {
    expect(parseSnapshotText('100:105:101,103')).toEqual({ xmin: '100', xmax: '105', xip: ['101', '103'] })
  })

  it('parses an empty in-progress list', () => {
    expect(parseSnapshotText('100:100:')).toEqual({ xmin: '100', xmax: '100', xip: [] })
  })

  it('keeps 64-bit xids exact as text', () => {
    expect(parseSnapshotText('4294967396:4294967400:4294967398')).toEqual({
      xmin: '4294967396',
      xmax: '4294967400',
      xip: ['4294967398'],
    })
    expect(parseSnapshotText('9223372036854775807:9223372036854775807:').xmax).toBe('9223372036854775807')
  })

  it.each(['', '100', '100:105', '100:105:101;103', 'a:b:', '-1:5:', ' 100:105:', '100:105: 101', '100:105:\n'])(
    'rejects %j',
    (text) => {
      expect(() => parseSnapshotText(text)).toThrow(`Unexpected snapshot text ${JSON.stringify(text)}`)
    },
  )
})

describe('visibilityOf', () => {
  it('reduces xmax and xip to 32 bits', () => {
    const visibility = visibilityOf(parseSnapshotText('4294967396:4294967400:4294967398,4294967399'))
    expect(visibility.xmax32).toBe(104)
    expect([...visibility.inProgress].sort((a, b) => a - b)).toEqual([102, 103])
  })
})

describe('commitsAfterSnapshot with the snapshot\'s LSN', () => {
  const visibility = visibilityOf({ ...parseSnapshotText('100:105:101,103'), lsn: '5000' })

  it('goes by the commit LSN: an xid past xmax may have committed before the snapshot', () => {
    expect(commitsAfterSnapshot({ xid: 106, commitLsn: 4999n as Lsn }, visibility)).toBe(false)
    expect(commitsAfterSnapshot({ xid: 106, commitLsn: 5000n as Lsn }, visibility)).toBe(true)
    expect(commitsAfterSnapshot({ xid: 101, commitLsn: 5001n as Lsn }, visibility)).toBe(true)
  })

  it('falls back to xmax for a snapshot stored without its LSN', () => {
    const stored = visibilityOf(parseSnapshotText('100:105:101,103'))
    expect(stored.lsn).toBeUndefined()
    expect(commitsAfterSnapshot({ xid: 106, commitLsn: 1n as Lsn }, stored)).toBe(true)
    expect(commitsAfterSnapshot({ xid: 104, commitLsn: 1n as Lsn }, stored)).toBe(false)
  })
})

describe('isVisibleInSnapshot / isAtOrAfterXmax', () => {
  const cases = (snapshot: string, expected: Record<number, [visible: boolean, atOrAfterXmax: boolean]>) => {
    const visibility = visibilityOf(parseSnapshotText(snapshot))
    const actual: Record<number, [boolean, boolean]> = {}
    for (const xid of Object.keys(expected).map(Number)) {
      actual[xid] = [isVisibleInSnapshot(xid, visibility), isAtOrAfterXmax(xid, visibility)]
    }
    expect(actual).toEqual(expected)
  }

  it('follows xmin / xmax / xip in a plain snapshot', () => {
    cases('100:105:101,103', {
      3: [true, false],
      99: [true, false],
      100: [true, false],
      101: [false, false],
      102: [true, false],
      103: [false, false],
      104: [true, false],
      105: [false, true],
      106: [false, true],
      1000: [false, true],
    })
  })

  it('sees everything before xmax when nothing is in progress', () => {
    cases('100:100:', {
      99: [true, false],
      100: [false, true],
      101: [false, true],
    })
  })

  it('handles xmax just below 2^32 with xids that wrapped past it (epoch 0)', () => {
    // xmin 4294967290, xmax 4294967294, 4294967292 in progress. pgoutput xids that wrapped
    // (0..n after 2^32) started after the snapshot.
    cases('4294967290:4294967294:4294967292', {
      4294967280: [true, false],
      4294967291: [true, false],
      4294967292: [false, false],
      4294967293: [true, false],
      4294967294: [false, true],
      4294967295: [false, true],
      0: [false, true],
      3: [false, true],
      5: [false, true],
      1000: [false, true],
    })
  })

  it('handles 64-bit snapshot xids with epoch > 0', () => {
    // epoch 1: xmin 100, xmax 104, 102 in progress (as 32-bit values).
    cases('4294967396:4294967400:4294967398', {
      // From epoch 0, just before the wrap: long committed.
      4294967295: [true, false],
      4294967000: [true, false],
      5: [true, false],
      99: [true, false],
      100: [true, false],
      101: [true, false],
      102: [false, false],
      103: [true, false],
      104: [false, true],
      105: [false, true],
      200: [false, true],
    })
  })

  it('handles a snapshot whose xmax wrapped while xmin did not', () => {
    // xmin 4294967294 (epoch 0), xmax 4294967298 = epoch 1 xid 2, in progress 4294967295 and epoch 1 xid 1.
    cases('4294967294:4294967298:4294967295,4294967297', {
      4294967293: [true, false],
      4294967294: [true, false],
      4294967295: [false, false],
      0: [true, false],
      1: [false, false],
      2: [false, true],
      3: [false, true],
    })
  })

  it('treats xids within 2^31 of xmax by modular distance', () => {
    const visibility = visibilityOf(parseSnapshotText('1000:1000:'))
    // 2^31 - 1 ahead of xmax: after it. 2^31 + 1 ahead is 2^31 - 1 behind on the circle: before it.
    expect(isAtOrAfterXmax(1000 + 2 ** 31 - 1, visibility)).toBe(true)
    expect(isVisibleInSnapshot(1000 + 2 ** 31 - 1, visibility)).toBe(false)
    expect(isVisibleInSnapshot(1000 + 2 ** 31 + 1, visibility)).toBe(true)
  })
})
