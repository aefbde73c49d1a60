/**
 * The snapshot/log merge on its own (`snapshot-merge.ts`, docs/ARCHITECTURE.md I2, I3, I11): the
 * one decision per shape and transaction, and the bound on changes held for waiting shapes.
 */
import { describe, expect, it } from 'vitest'
import { createLogger } from '../../src/log.js'
import { lsn } from '../../src/pg/lsn.js'
import { MERGE, SHAPE_PHASE, type ActiveShape } from '../../src/shapes/active-shape.js'
import { MERGE_DECISION, SnapshotMerge } from '../../src/shapes/snapshot-merge.js'
import { visibilityOf } from '../../src/shapes/xid-visibility.js'
import { itemsRelation, liveShape, waitingShape } from '../support/items-table.js'

function makeMerge(maxHeldChanges = 1_000) {
  const invalidated: string[] = []
  const merge = new SnapshotMerge({
    maxHeldChanges,
    invalidate: (shape, reason) => {
      invalidated.push(`${shape.stored.handle}: ${reason}`)
      shape.drop()
      merge.leave(shape)
    },
    log: createLogger('silent'),
  })
  return { merge, invalidated }
}

/** Running at the snapshot: 101 and 103; xmax 105; the WAL position read after it: 5000. */
const SNAPSHOT = visibilityOf({ xmin: '101', xmax: '105', xip: ['101', '103'], lsn: '5000' })
const tx = (xid: number, commitLsn: number) => ({ xid, commitLsn: lsn(BigInt(commitLsn)) })
const heldTx = (xid: number, changes: number) => ({
  ...tx(xid, xid * 10),
  endLsn: lsn(BigInt(xid * 10 + 1)),
  changes: Array.from({ length: changes }, (_, i) => ({ kind: 'insert' as const, relation: itemsRelation('d'), record: [String(i)] })),
})

function startedShape(id: number): ActiveShape {
  const shape = waitingShape(id)
  shape.startSnapshot(SNAPSHOT)
  return shape
}

describe('SnapshotMerge.decide', () => {
  it('holds for a shape whose snapshot has not started, and skips for a dropped one', () => {
    const { merge } = makeMerge()
    const shape = waitingShape(1)
    expect(merge.decide(shape, tx(200, 9000))).toBe(MERGE_DECISION.hold)
    shape.drop()
    expect(merge.decide(shape, tx(200, 9000))).toBe(MERGE_DECISION.skip)
  })

  it('skips what the snapshot shows and appends what it does not (I3)', () => {
    const { merge } = makeMerge()
    const shape = startedShape(1)
    expect(merge.decide(shape, tx(100, 4000))).toBe(MERGE_DECISION.skip)
    expect(merge.decide(shape, tx(102, 4100))).toBe(MERGE_DECISION.skip)
    // Running when the snapshot was taken: not in it, though it commits before the WAL position.
    expect(merge.decide(shape, tx(103, 4200))).toBe(MERGE_DECISION.append)
    expect(shape.phase).toMatchObject({ merge: { kind: MERGE.filtering } })
  })

  it('appends every transaction unchecked once one commits at or past the snapshot\'s WAL position', () => {
    const { merge } = makeMerge()
    const shape = startedShape(1)
    // Past xmax but before the position: not yet the point (an xid past xmax does not mark it).
    expect(merge.decide(shape, tx(110, 4900))).toBe(MERGE_DECISION.append)
    expect(shape.phase).toMatchObject({ merge: { kind: MERGE.filtering } })
    expect(merge.decide(shape, tx(111, 5000))).toBe(MERGE_DECISION.append)
    expect(shape.phase).toMatchObject({ merge: { kind: MERGE.appendAll } })
    // From then on nothing is checked: every later commit lies past every commit the snapshot shows.
    expect(merge.decide(shape, tx(100, 6000))).toBe(MERGE_DECISION.append)
  })

  it('appends everything for a shape past its snapshot', () => {
    const { merge } = makeMerge()
    expect(merge.decide(liveShape(1), tx(1, 1))).toBe(MERGE_DECISION.append)
  })
})

describe('SnapshotMerge held changes', () => {
  it('drops the waiting shape holding the most once the total passes the limit, and counts nothing of it after', () => {
    const { merge, invalidated } = makeMerge(1_000)
    const small = waitingShape(1)
    const large = waitingShape(2)
    merge.hold(small, 300)
    merge.hold(large, 700)
    expect(invalidated).toEqual([])
    expect(merge.heldChanges).toBe(1_000)
    merge.hold(small, 1)
    expect(invalidated).toEqual(['h2: too many changes arrived while its snapshot waited for a slot'])
    expect(merge.heldChanges).toBe(301)
  })

  it('never drops a shape whose snapshot has started to make room', () => {
    const { merge, invalidated } = makeMerge(1_000)
    const started = waitingShape(1)
    const waiting = waitingShape(2)
    merge.hold(started, 900)
    merge.start(started, SNAPSHOT)
    merge.hold(waiting, 50)
    // The started shape's open part still counts until its commit: 900 + 151 > 1,000.
    merge.hold(waiting, 101)
    expect(invalidated).toEqual(['h2: too many changes arrived while its snapshot waited for a slot'])
  })

  it('stops counting a shape\'s held transactions once its snapshot starts, and hands them back', () => {
    const { merge } = makeMerge()
    const shape = waitingShape(1)
    merge.hold(shape, 3)
    shape.hold(heldTx(200, 3))
    merge.hold(shape, 2)
    // 2 of an open transaction remain counted.
    expect(merge.start(shape, SNAPSHOT).map((held) => held.xid)).toEqual([200])
    expect(merge.heldChanges).toBe(2)
    expect(shape.phase.kind).toBe(SHAPE_PHASE.snapshotting)
    merge.release(shape)
    expect(merge.heldChanges).toBe(0)
  })

  it('uncounts a transaction that will be sent again, never below zero', () => {
    const { merge } = makeMerge()
    const shape = waitingShape(1)
    merge.hold(shape, 5)
    merge.unhold(shape, 3)
    expect(merge.heldChanges).toBe(2)
    merge.unhold(shape, 9)
    expect(merge.heldChanges).toBe(0)
  })
})

describe('SnapshotMerge joins', () => {
  it('asks a new shape\'s snapshot to show what was routed before it joined, until the snapshot starts', () => {
    const { merge } = makeMerge()
    const RUNNING = visibilityOf({ xmin: '100', xmax: '100', xip: [] })
    merge.record(100)
    const shape = waitingShape(1)
    merge.join(shape, false)
    merge.record(101)
    expect(merge.commitsMissedBy(shape, RUNNING)).toEqual([100])
    merge.start(shape, RUNNING)
    expect(merge.commitsMissedBy(shape, RUNNING)).toEqual([])
  })

  it('counts an open transaction none of whose changes were routed as after the shape', () => {
    const { merge } = makeMerge()
    const RUNNING = visibilityOf({ xmin: '100', xmax: '100', xip: [] })
    merge.record(100)
    const shape = waitingShape(1)
    merge.join(shape, true)
    expect(merge.commitsMissedBy(shape, RUNNING)).toEqual([])
  })
})
