import { describe, expect, it } from 'vitest'
import { UnconfirmedCommits } from '../../src/shapes/unconfirmed-commits.js'
import { parseSnapshotText, visibilityOf } from '../../src/shapes/xid-visibility.js'

const snapshot = (text: string) => visibilityOf(parseSnapshotText(text))

describe('UnconfirmedCommits', () => {
  it('names the transactions routed before a mark that a snapshot still counts as running', () => {
    const commits = new UnconfirmedCommits()
    commits.record(100)
    commits.record(102)
    const joined = commits.next
    commits.record(101)
    // 100 is visible; 102 is past xmax and 101 in progress, but only 102 came before the mark.
    expect(commits.missedBy(snapshot('101:102:101'), joined)).toEqual([102])
    expect(commits.missedBy(snapshot('101:103:101'), joined)).toEqual([])
  })

  it('forgets what a snapshot shows, and nothing else', () => {
    const commits = new UnconfirmedCommits()
    for (const xid of [100, 101, 102]) commits.record(xid)
    commits.confirm(snapshot('101:103:101'))
    expect(commits.size).toBe(1)
    expect(commits.missedBy(snapshot('100:100:'), commits.next)).toEqual([101])
  })

  it('keeps the first routing of a transaction sent again (a reconnect)', () => {
    const commits = new UnconfirmedCommits()
    commits.record(100)
    const joined = commits.next
    commits.record(100)
    expect(commits.missedBy(snapshot('100:100:'), joined)).toEqual([100])
  })
})
