/**
 * routing: per-change cost of the shape router with 10 versus 10,000 shapes filtered by
 * equality (`owner = 'user<n>'`) on one table. Every change matches exactly one shape, and
 * each transaction's 100 changes go to 10 shapes, in both runs: the work that must be done
 * (evaluate one where, encode one message, one log append per touched shape) is equal, so the
 * ratio shows what merely having more shapes costs (goal: under 2×). A second workload spreads
 * each transaction over 100 shapes when there are 10,000 (more appends: real work, reported
 * apart). The real ShapeRouter runs
 * on real compiled shapes; storage is a stub that accepts batches at once, so only routing,
 * filtering and encoding are timed. A third run scans 10,000 shapes that have no index
 * (`owner LIKE 'user<n>'`), for contrast.
 *
 * `node --import tsx bench/routing.ts`
 */
import { performance } from 'node:perf_hooks'
import { pathToFileURL } from 'node:url'
import { createLogger } from '../src/log.js'
import type { Lsn } from '../src/pg/lsn.js'
import type { TableInfo } from '../src/pg/introspect.js'
import type { Relation, Transaction } from '../src/replication/transaction.js'
import { ActiveShape } from '../src/shapes/active-shape.js'
import { definitionKey, type ShapeDefinition } from '../src/shapes/shape-definition.js'
import { ShapeRouter } from '../src/shapes/shape-router.js'
import type { ShapeNotifier } from '../src/shapes/shape-notifier.js'
import { compileWhere } from '../src/shapes/where/compile-where.js'
import { visibilityOf } from '../src/shapes/xid-visibility.js'
import type { ShapeLogStore, StoredShape } from '../src/storage/shape-log-store.js'

export interface RoutingBenchResult {
  readonly perChangeNs10: number
  readonly perChangeNs10000: number
  /** perChangeNs10000 / perChangeNs10: the goal is under 2. */
  readonly ratio: number
  /** The same with each transaction spread over 100 of the 10,000 shapes (10× the appends). */
  readonly spreadRatio: number
  /** Per-change cost with 10,000 unindexed (scanned) shapes, over the 10-shape cost. */
  readonly scannedRatio: number
}

const TABLE: TableInfo = {
  oid: 1,
  table: { schema: 'public', name: 'items' },
  primaryKey: ['id'],
  replicaIdentity: 'full',
  identity: { source: 'primary-key' },
  partitioned: false,
  persistence: 'permanent',
  system: false,
  columns: [
    { name: 'id', typeOid: 23, typeName: 'int4', dims: 0, notNull: true, pkIndex: 0 },
    { name: 'owner', typeOid: 25, typeName: 'text', dims: 0, notNull: true, pkIndex: undefined },
    { name: 'title', typeOid: 25, typeName: 'text', dims: 0, notNull: false, pkIndex: undefined },
  ],
}
const RELATION: Relation = {
  tag: 'relation',
  oid: 1,
  schema: 'public',
  name: 'items',
  replicaIdentity: 'f',
  columns: TABLE.columns.map((c) => ({ name: c.name, typeOid: c.typeOid, isKey: c.pkIndex !== undefined })),
}
const CHANGES_PER_TX = 100

function makeRouter(shapes: number, operator: '=' | 'LIKE'): ShapeRouter {
  const committed = { durable: Promise.resolve() }
  const store = { durableLsn: 0n as Lsn, committedLsn: 0n as Lsn, commit: async () => committed, flushed: async () => {} } as unknown as ShapeLogStore
  const notifier = { notify: () => {} } as unknown as ShapeNotifier
  const router = new ShapeRouter({ store, notifier, acknowledge: () => {}, invalidate: () => {}, onStorageFailure: (error) => { throw error }, maxHeldChanges: 1_000_000, log: createLogger('silent') })
  for (let i = 0; i < shapes; i++) {
    const where = compileWhere(`owner ${operator} $1`, () => `user${i}`, TABLE)
    const definition: ShapeDefinition = { table: TABLE.table, replica: 'default', log: 'full', where: where.canonical }
    const stored = { id: i, handle: `h${i}`, definition, definitionKey: definitionKey(definition), status: 'ready', createdAtMs: 0 } as unknown as StoredShape
    const shape = ActiveShape.waiting(stored, { table: TABLE, where })
    // A snapshot behind every transaction of the run: the shape appends them all.
    shape.startSnapshot(visibilityOf({ xmin: '1', xmax: '1', xip: [] }))
    shape.passSnapshot()
    shape.completeSnapshot()
    router.add(shape)
  }
  return router
}

function transactions(count: number, users: number, firstLsn: bigint, shapesPerTx: number): Transaction[] {
  const txs: Transaction[] = []
  let id = 0
  for (let t = 0; t < count; t++) {
    const changes = []
    // This transaction's owners: a window of `shapesPerTx` users that moves on each time.
    const window = Array.from({ length: shapesPerTx }, (_, k) => ((t * shapesPerTx + k) * 7919) % users)
    for (let c = 0; c < CHANGES_PER_TX; c++) {
      const owner = `user${window[c % window.length]!}`
      changes.push({ kind: 'insert' as const, relation: RELATION, record: [String(id++), owner, 'a title'] })
    }
    const lsn = (firstLsn + BigInt(t) * 100n) as Lsn
    txs.push({ xid: 1000 + t, commitLsn: lsn, endLsn: (lsn + 1n) as Lsn, changes })
  }
  return txs
}

/** Nanoseconds per change, median of `rounds` timed passes after a warm-up pass. */
export async function perChangeNs(shapes: number, operator: '=' | 'LIKE', txCount: number, rounds: number, shapesPerTx = 10): Promise<number> {
  const router = makeRouter(shapes, operator)
  let lsn = 1_000n
  const pass = async () => {
    const txs = transactions(txCount, shapes, lsn, Math.min(shapesPerTx, shapes))
    lsn += BigInt(txCount) * 100n + 100n
    const started = performance.now()
    for (const tx of txs) await router.onTransaction(tx)
    await router.flushed()
    return ((performance.now() - started) * 1e6) / (txCount * CHANGES_PER_TX)
  }
  await pass()
  const times: number[] = []
  for (let r = 0; r < rounds; r++) times.push(await pass())
  times.sort((a, b) => a - b)
  return times[Math.floor(times.length / 2)]!
}

export async function runRoutingBench(options: { txCount?: number; rounds?: number } = {}): Promise<RoutingBenchResult> {
  const txCount = options.txCount ?? 200
  const rounds = options.rounds ?? 5
  // Alternate the two sizes so drift on a shared machine hits both alike.
  const small: number[] = []
  const large: number[] = []
  for (let i = 0; i < 3; i++) {
    small.push(await perChangeNs(10, '=', txCount, rounds))
    large.push(await perChangeNs(10_000, '=', txCount, rounds))
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!
  const perChangeNs10 = median(small)
  const perChangeNs10000 = median(large)
  const spread = await perChangeNs(10_000, '=', txCount, rounds, 100)
  const scanned = await perChangeNs(10_000, 'LIKE', Math.max(2, Math.floor(txCount / 50)), 1)
  return {
    perChangeNs10,
    perChangeNs10000,
    ratio: perChangeNs10000 / perChangeNs10,
    spreadRatio: spread / perChangeNs10,
    scannedRatio: scanned / perChangeNs10,
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const result = await runRoutingBench()
  const us = (ns: number) => `${(ns / 1000).toFixed(2)} µs`
  console.log(`routing, one table, ${CHANGES_PER_TX} inserts per transaction over 10 shapes, each change in exactly one shape`)
  console.log(`  10 equality shapes:            ${us(result.perChangeNs10)} per change`)
  console.log(`  10,000 equality shapes:        ${us(result.perChangeNs10000)} per change`)
  console.log(`  ratio 10,000 / 10:             ${result.ratio.toFixed(2)}x (goal < 2x)`)
  console.log(`  spread over 100 shapes per tx:  ${result.spreadRatio.toFixed(2)}x the 10-shape cost (10x the log appends)`)
  console.log(`  10,000 unindexed (LIKE) shapes: ${result.scannedRatio.toFixed(0)}x the 10-shape cost, for contrast`)
}
