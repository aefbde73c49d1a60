import { describe, expect, it } from 'vitest'
import { lastSeenLsn, processedLsn, resumeLsn } from '../../src/http/last-seen-lsn.js'
import type { Lsn } from '../../src/pg/lsn.js'

describe('resumeLsn: the shape’s own LSN at the end of a response', () => {
  it('is the smallest LSN whose <lsn>_0 is not before the end', () => {
    expect(resumeLsn({ tx: 0n, op: 0xffff_ffff })).toBe(1n)
    expect(resumeLsn({ tx: 26848344n, op: 3 })).toBe(26848345n)
    expect(resumeLsn({ tx: 26848344n, op: 0 })).toBe(26848344n)
  })

  it('does not creep forward when a client resumes from it again and again', () => {
    let end = { tx: 26848344n, op: 2 }
    const first = resumeLsn(end)
    for (let i = 0; i < 100; i++) end = { tx: resumeLsn(end), op: 0 }
    expect(end.tx).toBe(first)
  })
})

describe('processedLsn: the server-wide LSN processed', () => {
  it('stays below the committed end LSN, where the next commit record may start', () => {
    expect(processedLsn(26848400n as Lsn)).toBe(26848399n)
    expect(processedLsn(0n as Lsn)).toBe(0n)
  })

  it('stays below the first transaction a shape waiting for a move-in still has to append', () => {
    expect(processedLsn(26848400n as Lsn, 26848000n as Lsn)).toBe(26847999n)
    expect(processedLsn(26848400n as Lsn, 26848400n as Lsn)).toBe(26848399n)
    // Promises nothing it could not: every entry still to come has a commit LSN above it.
    expect(lastSeenLsn({ tx: 26847000n, op: 4 }, processedLsn(26848400n as Lsn, 26848000n as Lsn))).toBeLessThan(26848000n)
  })
})

describe('lastSeenLsn: the value of an up-to-date at the head', () => {
  it('is the server-wide LSN when the shape is idle', () => {
    expect(lastSeenLsn({ tx: 0n, op: 0xffff_ffff }, 26848399n)).toBe(26848399n)
    expect(lastSeenLsn({ tx: 26848344n, op: 2 }, 26900000n)).toBe(26900000n)
  })

  it('never falls below the shape’s own end, so <value>_0 is never before it', () => {
    expect(lastSeenLsn({ tx: 26848344n, op: 2 }, 26848344n)).toBe(26848345n)
    expect(lastSeenLsn({ tx: 26848344n, op: 0 }, 1n)).toBe(26848344n)
  })
})
