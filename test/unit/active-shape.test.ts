/** The shape's phases and their transitions (`active-shape.ts`): the only way its state changes. */
import { describe, expect, it } from 'vitest'
import { InvalidRequestError, MustRefetchError } from '../../src/errors.js'
import { lsn } from '../../src/pg/lsn.js'
import { ActiveShape, droppedError, MERGE, SHAPE_PHASE } from '../../src/shapes/active-shape.js'
import { ITEMS_TABLE, itemsRelation, SHOWS_NONE, storedShape, waitingShape } from '../support/items-table.js'

const held = (xid: number) => ({ xid, commitLsn: lsn(BigInt(xid)), endLsn: lsn(BigInt(xid) + 1n), changes: [{ kind: 'insert' as const, relation: itemsRelation('d'), record: ['1'] }] })

describe('ActiveShape', () => {
  it('goes waiting → snapshotting → following, handing its held transactions on when the snapshot starts', () => {
    const shape = waitingShape(1)
    expect(shape.phase).toEqual({ kind: SHAPE_PHASE.waiting, held: [] })
    shape.hold(held(5))
    shape.hold(held(6))
    expect(shape.snapshotComplete).toBe(false)
    expect(shape.startSnapshot(SHOWS_NONE).map((tx) => tx.xid)).toEqual([5, 6])
    expect(shape.phase).toEqual({ kind: SHAPE_PHASE.snapshotting, merge: { kind: MERGE.filtering, visibility: SHOWS_NONE } })
    expect(shape.snapshotComplete).toBe(false)
    shape.passSnapshot()
    shape.completeSnapshot()
    expect(shape.phase).toEqual({ kind: SHAPE_PHASE.following, merge: { kind: MERGE.appendAll } })
    expect(shape.snapshotComplete).toBe(true)
    expect(shape.dropped).toBe(false)
  })

  it('starts following and filtering when loaded from storage', () => {
    const shape = ActiveShape.resumed(storedShape(1), { table: ITEMS_TABLE, where: undefined }, SHOWS_NONE)
    expect(shape.phase).toEqual({ kind: SHAPE_PHASE.following, merge: { kind: MERGE.filtering, visibility: SHOWS_NONE } })
    expect(shape.snapshotComplete).toBe(true)
  })

  it('refuses a transition out of order: a bug, not a state', () => {
    const shape = waitingShape(1)
    expect(() => shape.completeSnapshot()).toThrow(/waiting-for-snapshot, not snapshotting/)
    expect(() => shape.passSnapshot()).toThrow(/waiting-for-snapshot/)
    shape.startSnapshot(SHOWS_NONE)
    expect(() => shape.hold(held(5))).toThrow(/snapshotting, not waiting-for-snapshot/)
    expect(() => shape.startSnapshot(SHOWS_NONE)).toThrow()
  })

  it('is dropped for good: its held transactions go, and later transitions change nothing', () => {
    const shape = waitingShape(1)
    shape.hold(held(5))
    expect(shape.drop()).toBe(true)
    expect(shape.drop()).toBe(false)
    expect(shape.dropped).toBe(true)
    expect(shape.phase).toEqual({ kind: SHAPE_PHASE.dropped, failure: undefined, snapshotComplete: false })
    // A snapshot task that has not noticed yet.
    expect(shape.startSnapshot(SHOWS_NONE)).toEqual([])
    shape.hold(held(6))
    shape.passSnapshot()
    shape.completeSnapshot()
    expect(shape.phase.kind).toBe(SHAPE_PHASE.dropped)
    expect(shape.snapshotComplete).toBe(false)
  })

  it('keeps knowing its snapshot was complete once dropped', () => {
    const shape = waitingShape(1)
    shape.startSnapshot(SHOWS_NONE)
    shape.completeSnapshot()
    shape.drop()
    expect(shape.snapshotComplete).toBe(true)
  })

  it('gives waiting requests a 409, or the 400 it was dropped with', () => {
    const refetched = waitingShape(1)
    refetched.drop()
    expect(droppedError(refetched)).toBeInstanceOf(MustRefetchError)
    const failed = waitingShape(2)
    const failure = InvalidRequestError.of('where', 'PostgreSQL could not take this shape\'s snapshot')
    failed.drop(failure)
    expect(droppedError(failed)).toBe(failure)
  })
})
