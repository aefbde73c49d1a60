/**
 * The router and the snapshot merge together against a model (docs/ARCHITECTURE.md I1, I3): a
 * shape joins between transactions, its snapshot starts later — between transactions or while one
 * is arriving — showing every transaction routed before the shape joined (I2) and any others before
 * its WAL position, in any xid order. Its log must then hold exactly the transactions from its
 * join on that the snapshot does not show, in commit order, each whole.
 */
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { createLogger } from '../../src/log.js'
import { lsn, type Lsn } from '../../src/pg/lsn.js'
import type { Transaction } from '../../src/replication/transaction.js'
import type { ShapeNotifier } from '../../src/shapes/shape-notifier.js'
import { ShapeRouter } from '../../src/shapes/shape-router.js'
import { visibilityOf } from '../../src/shapes/xid-visibility.js'
import type { LogBatch, ShapeLogStore } from '../../src/storage/shape-log-store.js'
import { itemsRelation, waitingShape } from '../support/items-table.js'

const RELATION = itemsRelation('f')

interface Scenario {
  /** Changes per transaction, in commit order. */
  readonly sizes: number[]
  /** xids in commit order: any order, as backends take xids when they start, not when they commit. */
  readonly xids: number[]
  /** Transactions routed before the shape joins. */
  readonly joinAt: number
  /** The snapshot's WAL position lies at this transaction's commit: it shows none from there on. */
  readonly positionAt: number
  /** Which of the transactions from the join to the position the snapshot shows. */
  readonly shown: boolean[]
  /** Transactions routed before the snapshot starts, and how many changes of the next one. */
  readonly startAt: number
  readonly startAfterChanges: number
}

const scenarios: fc.Arbitrary<Scenario> = fc
  .array(fc.integer({ min: 1, max: 3 }), { minLength: 1, maxLength: 12 })
  .chain((sizes) => {
    const n = sizes.length
    return fc.record({
      sizes: fc.constant(sizes),
      xids: fc.shuffledSubarray(Array.from({ length: n }, (_, i) => 1_000 + i), { minLength: n, maxLength: n }),
      joinAt: fc.integer({ min: 0, max: n }),
      positionAt: fc.integer({ min: 0, max: n }),
      shown: fc.array(fc.boolean(), { minLength: n, maxLength: n }),
      startAt: fc.integer({ min: 0, max: n }),
      startAfterChanges: fc.integer({ min: 0, max: 3 }),
    })
  })
  .map((s) => {
    const positionAt = Math.max(s.positionAt, s.joinAt)
    return { ...s, positionAt, startAt: Math.max(s.startAt, s.joinAt) }
  })

/** Which transactions the snapshot shows: all before the join, some up to its position, none after. */
function shownBy(s: Scenario): boolean[] {
  return s.sizes.map((_, i) => i < s.joinAt || (i < s.positionAt && s.shown[i]!))
}

function snapshotOf(s: Scenario) {
  const shown = shownBy(s)
  const visibleXids = s.xids.filter((_, i) => shown[i])
  const xmax = visibleXids.length === 0 ? 1_000 : Math.max(...visibleXids) + 1
  const xip = s.xids.filter((xid, i) => !shown[i] && xid < xmax)
  const position = (s.positionAt + 1) * 100
  return visibilityOf({ xmin: String(Math.min(xmax, ...xip)), xmax: String(xmax), xip: xip.map(String), lsn: String(position) })
}

async function route(s: Scenario): Promise<number[]> {
  const batches: LogBatch[] = []
  const store = {
    durableLsn: 0n as Lsn,
    committedLsn: 0n as Lsn,
    commit: async (batch: LogBatch) => {
      batches.push(batch)
      return { durable: Promise.resolve() }
    },
    stage: async () => {},
    discardStaged: () => {},
    flushed: async () => {},
  } as unknown as ShapeLogStore
  const router = new ShapeRouter({
    store,
    notifier: { notify: () => {} } as unknown as ShapeNotifier,
    acknowledge: () => {},
    invalidate: () => {
      throw new Error('nothing here ends the shape')
    },
    onStorageFailure: (error) => {
      throw error
    },
    maxHeldChanges: 1_000,
    log: createLogger('silent'),
  })
  const shape = waitingShape(1)
  let id = 0
  for (let i = 0; i <= s.sizes.length; i++) {
    if (i === s.joinAt) router.add(shape)
    if (i === s.sizes.length) {
      if (i === s.startAt) router.snapshotStarted(shape, snapshotOf(s))
      break
    }
    // Commit LSNs follow commit order; the snapshot's position is at transaction `positionAt`.
    const tx: Transaction = {
      xid: s.xids[i]!,
      commitLsn: lsn(BigInt((i + 1) * 100)),
      endLsn: lsn(BigInt((i + 1) * 100 + 1)),
      changes: Array.from({ length: s.sizes[i]! }, () => ({ kind: 'insert' as const, relation: RELATION, record: [String(id++)] })),
    }
    router.onBegin(tx)
    const before = i === s.startAt ? Math.min(s.startAfterChanges, tx.changes.length) : tx.changes.length
    await router.onChanges(tx.changes.slice(0, before))
    if (i === s.startAt) router.snapshotStarted(shape, snapshotOf(s))
    await router.onChanges(tx.changes.slice(before))
    await router.onCommit(tx)
  }
  await router.flushed()
  const xids: number[] = []
  for (const batch of batches) {
    for (const append of batch.appends) {
      const messages = append.entries.map((entry) => JSON.parse(entry) as { headers: { txids: [number]; last?: true } })
      // Each transaction arrives whole, in one append, its last message marked.
      expect(new Set(messages.map((m) => m.headers.txids[0])).size).toBe(1)
      expect(messages.at(-1)!.headers.last).toBe(true)
      xids.push(messages[0]!.headers.txids[0])
    }
  }
  return xids
}

describe('router and snapshot merge against a model', () => {
  it('appends exactly the transactions from the join on that the snapshot does not show, in commit order', async () => {
    await fc.assert(
      fc.asyncProperty(scenarios, async (s) => {
        const shown = shownBy(s)
        const expected = s.xids.filter((_, i) => i >= s.joinAt && !shown[i])
        expect(await route(s)).toEqual(expected)
      }),
      { numRuns: 200 },
    )
  })
})
