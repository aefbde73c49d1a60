/**
 * Which transactions a new shape's snapshot must show: those the router took in before the
 * shape joined, including the open one once any of its changes were routed (`commitsMissedBy`).
 */
import { describe, expect, it } from 'vitest'
import { createLogger } from '../../src/log.js'
import { lsn, type Lsn } from '../../src/pg/lsn.js'
import type { Transaction } from '../../src/replication/transaction.js'
import type { ShapeNotifier } from '../../src/shapes/shape-notifier.js'
import { ShapeRouter } from '../../src/shapes/shape-router.js'
import { parseSnapshotText, visibilityOf } from '../../src/shapes/xid-visibility.js'
import type { ShapeLogStore } from '../../src/storage/shape-log-store.js'
import { itemsRelation, SHOWS_NONE, waitingShape } from '../support/items-table.js'

const RELATION = itemsRelation('f')

function makeRouter(): ShapeRouter {
  const store = { durableLsn: 0n as Lsn, committedLsn: 0n as Lsn, commit: async () => ({ durable: Promise.resolve() }), flushed: async () => {} } as unknown as ShapeLogStore
  const notifier = { notify: () => {} } as unknown as ShapeNotifier
  return new ShapeRouter({ store, notifier, acknowledge: () => {}, invalidate: () => {}, onStorageFailure: (error) => { throw error }, maxHeldChanges: 1_000, log: createLogger('silent') })
}

const insert = (xid: number): Transaction => ({
  xid,
  commitLsn: lsn(BigInt(xid * 100)),
  endLsn: lsn(BigInt(xid * 100 + 1)),
  changes: [{ kind: 'insert', relation: RELATION, record: [String(xid)] }],
})

describe('commitsMissedBy', () => {
  it('names the transactions routed before the shape joined, not those after', async () => {
    const router = makeRouter()
    await router.onTransaction(insert(100))
    const shape = waitingShape(1)
    router.add(shape)
    await router.onTransaction(insert(101))
    expect(router.commitsMissedBy(shape, SHOWS_NONE)).toEqual([100])
    expect(router.commitsMissedBy(shape, visibilityOf(parseSnapshotText('101:101:')))).toEqual([])
  })

  it('counts the open transaction once some of its changes were routed without the shape', async () => {
    const router = makeRouter()
    const atStart = waitingShape(1)
    const midway = waitingShape(2)
    const tx = insert(100)
    router.onBegin(tx)
    router.add(atStart)
    await router.onChanges(tx.changes)
    router.add(midway)
    await router.onCommit(tx)
    expect(router.commitsMissedBy(atStart, SHOWS_NONE)).toEqual([])
    expect(router.commitsMissedBy(midway, SHOWS_NONE)).toEqual([100])
  })

  it('forgets what a snapshot showed, and the shape once its snapshot started', async () => {
    const router = makeRouter()
    await router.onTransaction(insert(100))
    await router.onTransaction(insert(101))
    const shape = waitingShape(1)
    router.add(shape)
    router.confirmCommits(visibilityOf(parseSnapshotText('101:102:101')))
    expect(router.unconfirmedCommits).toBe(1)
    expect(router.commitsMissedBy(shape, SHOWS_NONE)).toEqual([101])
    router.snapshotStarted(shape, SHOWS_NONE)
    expect(router.commitsMissedBy(shape, SHOWS_NONE)).toEqual([])
  })

  it('forgets every transaction when storage starts over on another history', async () => {
    const router = makeRouter()
    await router.onTransaction(insert(5_000_000))
    router.reset(lsn(1n))
    const shape = waitingShape(1)
    router.add(shape)
    // A new cluster far behind in xids would never show the old one.
    expect(router.commitsMissedBy(shape, SHOWS_NONE)).toEqual([])
  })
})
