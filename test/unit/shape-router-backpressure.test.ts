import { describe, expect, it } from 'vitest'
import { createLogger } from '../../src/log.js'
import { lsn, type Lsn } from '../../src/pg/lsn.js'
import type { TableInfo } from '../../src/pg/introspect.js'
import type { Relation, Transaction } from '../../src/replication/transaction.js'
import { MERGE_PHASE, type ActiveShape } from '../../src/shapes/active-shape.js'
import { definitionKey, type ShapeDefinition } from '../../src/shapes/shape-definition.js'
import type { ShapeNotifier } from '../../src/shapes/shape-notifier.js'
import { ShapeRouter } from '../../src/shapes/shape-router.js'
import type { LogBatch, ShapeLogStore, StoredShape } from '../../src/storage/shape-log-store.js'

const TABLE: TableInfo = {
  oid: 1,
  table: { schema: 'public', name: 'items' },
  primaryKey: ['id'],
  replicaIdentity: 'default',
  columns: [{ name: 'id', typeOid: 23, typeName: 'int4', dims: 0, notNull: true, pkIndex: 0 }],
}
const RELATION: Relation = {
  tag: 'relation',
  oid: 1,
  schema: 'public',
  name: 'items',
  replicaIdentity: 'd',
  columns: [{ name: 'id', typeOid: 23, isKey: true }],
}

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

function routerWithOneShape(store: ShapeLogStore): ShapeRouter {
  const notifier = { notify: () => {} } as unknown as ShapeNotifier
  const router = new ShapeRouter({ store, notifier, acknowledge: () => {}, invalidate: () => {}, onStorageFailure: (error) => { throw error }, log: createLogger('silent') })
  const definition: ShapeDefinition = { table: TABLE.table, replica: 'default', log: 'full' }
  const stored = { id: 1, handle: 'h1', definition, definitionKey: definitionKey(definition), status: 'ready', createdAtMs: 0 } as unknown as StoredShape
  const shape: ActiveShape = { stored, table: TABLE, where: undefined, phase: MERGE_PHASE.appendAll, visibility: undefined, held: [], snapshotComplete: true, dropped: false }
  router.add(shape)
  return router
}

const inserts = (n: number, tx: number): Transaction => ({
  xid: 100 + tx,
  commitLsn: lsn(BigInt(1_000 * (tx + 1))),
  endLsn: lsn(BigInt(1_000 * (tx + 1) + 1)),
  changes: Array.from({ length: n }, (_, i) => ({ kind: 'insert' as const, relation: RELATION, record: [String(tx * n + i)] })),
})

describe('router backpressure', () => {
  it('stops taking transactions while 50,000 entries wait for storage, and goes on as soon as the oldest commit is done', async () => {
    const { store, waiting } = heldStore()
    const router = routerWithOneShape(store)
    // 50 transactions of 1,000 entries are allowed in flight without waiting.
    for (let tx = 0; tx < 50; tx++) await router.onTransaction(inserts(1_000, tx))
    let taken = false
    const next = router.onTransaction(inserts(1_000, 50)).then(() => (taken = true))
    await new Promise((resolve) => setTimeout(resolve, 20))
    expect(waiting).toHaveLength(51)
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
    await new Promise((resolve) => setTimeout(resolve, 20))
    expect(waiting).toHaveLength(1_001)
    expect(taken).toBe(false)
    waiting[0]!.finish()
    await next
    for (const { finish } of waiting) finish()
    await router.flushed()
  })
})
