import { describe, expect, it } from 'vitest'
import { createLogger } from '../../src/log.js'
import { lsn, type Lsn } from '../../src/pg/lsn.js'
import type { TableInfo } from '../../src/pg/introspect.js'
import type { Relation, Transaction } from '../../src/replication/transaction.js'
import { SHAPE_PHASE, type ActiveShape } from '../../src/shapes/active-shape.js'
import type { ShapeNotifier } from '../../src/shapes/shape-notifier.js'
import { ShapeRouter } from '../../src/shapes/shape-router.js'
import type { LogBatch, ShapeLogStore } from '../../src/storage/shape-log-store.js'
import { drained, waitFor } from '../support/wait.js'
import { ITEMS_TABLE, itemsRelation, liveShape, SHOWS_NONE, waitingShape } from '../support/items-table.js'

const TABLE = ITEMS_TABLE
const RELATION = itemsRelation('d')

/** A store whose commits finish only when the test says so, in order. */
function heldStore() {
  const waiting: { batch: LogBatch; finish: () => void }[] = []
  const store = {
    durableLsn: 0n as Lsn,
    committedLsn: 0n as Lsn,
    commit: (batch: LogBatch) =>
      new Promise<{ durable: Promise<void> }>((resolve) => waiting.push({ batch, finish: () => resolve({ durable: Promise.resolve() }) })),
    flushed: async () => {},
  } as unknown as ShapeLogStore
  return { store, waiting }
}

function makeRouter(store: ShapeLogStore, options: { maxHeldChanges?: number; invalidate?: (shape: ActiveShape, reason: string) => void } = {}): ShapeRouter {
  const notifier = { notify: () => {} } as unknown as ShapeNotifier
  return new ShapeRouter({
    store,
    notifier,
    acknowledge: () => {},
    invalidate: options.invalidate ?? (() => {}),
    onStorageFailure: (error) => {
      throw error
    },
    maxHeldChanges: options.maxHeldChanges ?? 1_000_000,
    log: createLogger('silent'),
  })
}

function routerWithOneShape(store: ShapeLogStore): ShapeRouter {
  const router = makeRouter(store)
  router.add(liveShape(1))
  return router
}

/** Transactions held for a shape awaiting its snapshot. */
const heldOf = (shape: ActiveShape) => (shape.phase.kind === SHAPE_PHASE.waiting ? shape.phase.held.length : 0)

const OTHER: TableInfo = { ...TABLE, oid: 2, table: { schema: 'public', name: 'other' } }
const OTHER_RELATION: Relation = { ...RELATION, oid: 2, name: 'other' }

const inserts = (n: number, tx: number, relation = RELATION): Transaction => ({
  xid: 100 + tx,
  commitLsn: lsn(BigInt(1_000 * (tx + 1))),
  endLsn: lsn(BigInt(1_000 * (tx + 1) + 1)),
  changes: Array.from({ length: n }, (_, i) => ({ kind: 'insert' as const, relation, record: [String(tx * n + i)] })),
})

describe('router memory bounds', () => {
  it('stops taking transactions while 50,000 entries wait for storage, and goes on as soon as the oldest commit is done', async () => {
    const { store, waiting } = heldStore()
    const router = routerWithOneShape(store)
    // 50 transactions of 1,000 entries are allowed in flight without waiting.
    for (let tx = 0; tx < 50; tx++) await router.onTransaction(inserts(1_000, tx))
    let taken = false
    const next = router.onTransaction(inserts(1_000, 50)).then(() => (taken = true))
    await waitFor(() => expect(waiting.length).toBe(51))
    // The store and the router use no timers: after this, the transaction is held back, not late.
    await drained()
    expect(taken).toBe(false)
    // Only the oldest commit finishes: that is room enough, the rest need not drain.
    waiting[0]!.finish()
    await next
    expect(taken).toBe(true)
    for (const { finish } of waiting) finish()
    await router.flushed()
  })

  it('also stops after 1,000 commits in flight, even of transactions with no entries', async () => {
    const { store, waiting } = heldStore()
    const router = routerWithOneShape(store)
    for (let tx = 0; tx < 1_000; tx++) await router.onTransaction(inserts(0, tx))
    let taken = false
    const next = router.onTransaction(inserts(0, 1_000)).then(() => (taken = true))
    await waitFor(() => expect(waiting.length).toBe(1_001))
    await drained()
    expect(taken).toBe(false)
    waiting[0]!.finish()
    await next
    for (const { finish } of waiting) finish()
    await router.flushed()
  })

  it('drops the waiting shape that holds the most changes once more than SLUICE_MAX_HELD_CHANGES are held', async () => {
    const { store, waiting } = heldStore()
    const dropped: string[] = []
    const router = makeRouter(store, {
      maxHeldChanges: 1_000,
      invalidate: (shape, reason) => {
        dropped.push(`${shape.stored.handle}: ${reason}`)
        shape.drop()
        router.remove(shape)
      },
    })
    const early = waitingShape(1)
    const late = waitingShape(2)
    router.add(early)
    for (let tx = 0; tx < 3; tx++) await router.onTransaction(inserts(300, tx))
    router.add(late)
    expect(dropped).toEqual([])
    // 900 held by the first shape; 300 more for each reach 1,500 > 1,000: the first goes.
    await router.onTransaction(inserts(300, 3))
    expect(dropped).toEqual(['h1: too many changes arrived while its snapshot waited for a slot'])
    // Its held changes go at once, though its snapshot task may wait for a slot a while yet.
    expect(heldOf(early)).toBe(0)
    // The second holds 300 (its part of the last transaction); once its snapshot starts, held
    // changes no longer count and it keeps every transaction whatever the limit.
    expect(heldOf(late)).toBe(1)
    router.snapshotStarted(late, SHOWS_NONE)
    // A third waiting shape may hold up to the limit itself: 900, with nothing else counted.
    router.add(waitingShape(3))
    for (let tx = 4; tx < 7; tx++) await router.onTransaction(inserts(300, tx))
    expect(dropped).toHaveLength(1)
    for (const { finish } of waiting) finish()
    await router.flushed()
    const lateEntries = waiting.flatMap(({ batch }) => batch.appends).filter((append) => append.shapeId === 2)
    expect(lateEntries.reduce((n, append) => n + append.entries.length, 0)).toBe(4 * 300)
  })

  it('never drops a shape whose snapshot has started; its open transaction stays counted until its commit', async () => {
    const { store, waiting } = heldStore()
    const dropped: string[] = []
    const router = makeRouter(store, {
      maxHeldChanges: 1_000,
      invalidate: (shape) => {
        dropped.push(`${shape.stored.handle} ${shape.phase.kind}`)
        shape.drop()
        router.remove(shape)
      },
    })
    const started = waitingShape(1)
    const other = waitingShape(2, OTHER)
    router.add(other)
    await router.onTransaction(inserts(450, 0, OTHER_RELATION))
    router.add(started)
    const tx = inserts(1_100, 1)
    router.onBegin(tx)
    await router.onChanges(tx.changes.slice(0, 500))
    router.snapshotStarted(started, SHOWS_NONE)
    // 450 + 500 + 51 passes the limit: the shape still waiting goes, not the one whose snapshot runs.
    await router.onChanges(tx.changes.slice(500))
    expect(dropped).toEqual([`h2 ${SHAPE_PHASE.waiting}`])
    await router.onCommit(tx)
    for (const { finish } of waiting) finish()
    await router.flushed()
  })
})
