/**
 * The replication sink: routes each change of a committed transaction to the shapes it may
 * concern (a hash lookup for equality-filtered shapes, see `routing-index.ts`) and gathers each
 * shape's part of the transaction. What a shape does with a transaction is the merge's decision
 * (`snapshot-merge.ts`: hold, skip or append, docs/ARCHITECTURE.md I2, I3); what a change is to a
 * shape is `shape-entries.ts`'s (its filter, per change); storage and acknowledgement are the
 * commit pipeline's (`commit-pipeline.ts`, I5).
 */
import type { Logger } from '../log.js'
import type { Lsn } from '../pg/lsn.js'
import type { ReplicationSink } from '../replication/replication-stream.js'
import type { Change, Relation, Transaction, TransactionBegin, TransactionCommit } from '../replication/transaction.js'
import type { ShapeAppend, ShapeLogStore } from '../storage/shape-log-store.js'
import { SHAPE_PHASE, type ActiveShape, type HeldTransaction } from './active-shape.js'
import { CommitPipeline } from './commit-pipeline.js'
import { RoutingIndex } from './routing-index.js'
import { schemaChange } from './schema-drift.js'
import { entriesOf, ShapeEntries, TRUNCATED } from './shape-entries.js'
import type { ShapeNotifier } from './shape-notifier.js'
import { MERGE_DECISION, SnapshotMerge } from './snapshot-merge.js'
import type { TakenChange } from './subquery/shape-subqueries.js'
import { SubqueryCommits, truncates } from './subquery/subquery-commits.js'
import { SubqueryRoutes } from './subquery/subquery-routes.js'
import type { Visibility } from './xid-visibility.js'

export interface ShapeRouterOptions {
  readonly store: ShapeLogStore
  readonly notifier: ShapeNotifier
  readonly acknowledge: (durable: Lsn) => void
  /** A shape that can no longer be kept correct (e.g. its table was truncated). */
  readonly invalidate: (shape: ActiveShape, reason: string) => void
  /**
   * A storage write failed (disk full, I/O error). Later batches may already be queued, so
   * carrying on could make storage skip a transaction: the owner must stop the process.
   */
  readonly onStorageFailure: (error: unknown) => void
  /**
   * Row changes kept in memory, over all shapes, for shapes whose snapshot waits for a slot;
   * past it the shape holding the most is dropped (SLUICE_MAX_HELD_CHANGES).
   */
  readonly maxHeldChanges: number
  readonly log: Logger
}

/** Entries a transaction may buffer before they are staged in storage. */
const STAGE_ENTRIES = 5_000

/** One shape's part of the open transaction, decided at its first change. */
type ShapePart =
  /** Changes kept whole: the shape's snapshot visibility is not known yet. */
  | { readonly kind: typeof MERGE_DECISION.hold; readonly changes: Change[] }
  /** The snapshot already holds this transaction, or the shape ended. */
  | { readonly kind: typeof MERGE_DECISION.skip }
  | { readonly kind: typeof MERGE_DECISION.append; readonly entries: ShapeEntries }
  /** A shape with subqueries: its changes of every table it reads, finished whole at commit (I25). */
  | { readonly kind: typeof SUBQUERY; readonly changes: TakenChange[] }

const SKIP: ShapePart = { kind: MERGE_DECISION.skip }
const SUBQUERY = 'subquery'

/** A transaction being received. */
interface OpenTransaction {
  readonly xid: number
  readonly commitLsn: Lsn
  /** `commitLsn` as the text every message's `lsn` header carries, made once. */
  readonly lsnText: string
  /** Changes received so far: the position of the next one. */
  position: number
  readonly parts: Map<ActiveShape, ShapePart>
  /** Entries made and not yet staged, across shapes. */
  buffered: number
}

/** A transaction being received again that storage already holds (after reconnecting or restarting). */
const REPLAY = 'replay'

export class ShapeRouter implements ReplicationSink {
  readonly #options: ShapeRouterOptions
  readonly #index = new RoutingIndex<ActiveShape>()
  /** Shapes by the tables their subqueries read. */
  readonly #subqueryRoutes = new SubqueryRoutes<ActiveShape>()
  readonly #subqueries: SubqueryCommits
  /** Every routed shape, for the rare look-up by table OID. */
  readonly #shapes = new Set<ActiveShape>()
  readonly #merge: SnapshotMerge
  readonly #pipeline: CommitPipeline
  #open: OpenTransaction | typeof REPLAY | undefined

  constructor(options: ShapeRouterOptions) {
    this.#options = options
    this.#merge = new SnapshotMerge({ maxHeldChanges: options.maxHeldChanges, invalidate: options.invalidate, log: options.log })
    this.#pipeline = new CommitPipeline(options)
    this.#subqueries = new SubqueryCommits({
      invalidate: options.invalidate,
      log: options.log,
      mark: () => this.#merge.routingMark(),
      missed: (visibility, mark) => this.#merge.commitsMissedBefore(visibility, mark),
      commitReleased: (...appends) => this.#pipeline.commitReleased(...appends),
      maxHeldChanges: options.maxHeldChanges,
    })
  }

  add(shape: ActiveShape): void {
    const { schema, name } = shape.table.table
    this.#index.add(shape, schema, name, shape.where?.equalityIndex)
    this.#subqueryRoutes.add(shape)
    this.#shapes.add(shape)
    const open = this.#open
    this.#merge.join(shape, open !== undefined && open !== REPLAY && open.position === 0)
  }

  /** A dropped shape leaves: it gets nothing more, and what it held goes now. */
  remove(shape: ActiveShape): void {
    this.#index.remove(shape)
    this.#subqueryRoutes.remove(shape)
    this.#shapes.delete(shape)
    this.#merge.leave(shape)
    this.#subqueries.leave(shape)
    // Its part of the open transaction is let go now, not at the commit.
    const open = this.#open
    if (open !== undefined && open !== REPLAY && open.parts.has(shape)) open.parts.set(shape, SKIP)
  }

  /** Ends every shape whose table this Relation message shows changed (rename, columns, types). */
  onRelation(relation: Relation): void {
    const current = {
      oid: relation.oid,
      schema: relation.schema,
      name: relation.name,
      columns: relation.columns.map((c) => ({ name: c.name, typeOid: c.typeOid })),
    }
    for (const shape of [...this.#shapes]) {
      if (shape.table.oid !== relation.oid) continue
      const why = schemaChange(shape, current)
      if (why) this.#options.invalidate(shape, `schema change: ${why}`)
    }
  }

  /** See `SnapshotMerge.commitsMissedBy`. */
  commitsMissedBy(shape: ActiveShape, visibility: Visibility): number[] {
    return this.#merge.commitsMissedBy(shape, visibility)
  }

  /** Any snapshot: the routed transactions it shows need no more watching. */
  confirmCommits(visibility: Visibility): void {
    this.#merge.confirmCommits(visibility)
  }

  /** Routed transactions no snapshot has shown yet. */
  get unconfirmedCommits(): number {
    return this.#merge.unconfirmedCommits
  }

  /** The shape's snapshot is taken and its visibility known: the transactions held for it go on. */
  snapshotStarted(shape: ActiveShape, visibility: Visibility): void {
    this.#routeBySubquery(shape)
    for (const tx of this.#merge.start(shape, visibility)) this.#appendHeld(shape, tx)
  }

  /**
   * A shape with subqueries and no equality index of its own is handed every change of its table
   * until its results are loaded; from then on, where a subquery's values can route it (I29),
   * only the changes of rows with one of those values, or one that may have entered since.
   */
  #routeBySubquery(shape: ActiveShape): void {
    const route = shape.subqueries?.outerRoute
    if (!route || shape.where?.equalityIndex || !this.#shapes.has(shape)) return
    const { schema, name } = shape.table.table
    this.#index.remove(shape)
    this.#index.add(shape, schema, name, route.equalityIndex())
    route.attach({ add: (key) => this.#index.addKey(shape, key), remove: (key) => this.#index.removeKey(shape, key) })
  }

  /**
   * A resumed shape with subqueries took its snapshot (`subquery/resume.ts`): its differences go
   * into its log first, then the transactions held for it.
   */
  resynced(shape: ActiveShape, visibility: Visibility, append: ShapeAppend | undefined): void {
    if (append) void this.#pipeline.commitReleased(append)
    this.snapshotStarted(shape, visibility)
  }

  /** A whole transaction at once (benchmarks and tests); the stream uses the three steps below. */
  async onTransaction(tx: Transaction): Promise<void> {
    this.onBegin(tx)
    await this.onChanges(tx.changes)
    await this.onCommit(tx)
  }

  onBegin(begin: TransactionBegin): void {
    // An open transaction that never committed will be sent again from its start.
    const open = this.#open
    if (open) {
      this.#pipeline.discardStaged()
      if (open !== REPLAY) {
        for (const [shape, part] of open.parts) {
          if (part.kind === MERGE_DECISION.hold) this.#merge.unhold(shape, part.changes.length)
          else if (part.kind === SUBQUERY) this.#subqueries.release(shape, part.changes.length)
        }
      }
    }
    this.#merge.record(begin.xid)
    this.#open =
      begin.commitLsn < this.#pipeline.accepted
        ? REPLAY
        : { xid: begin.xid, commitLsn: begin.commitLsn, lsnText: String(begin.commitLsn), position: 0, parts: new Map(), buffered: 0 }
  }

  async onChanges(changes: readonly Change[]): Promise<void> {
    const open = this.#open
    if (open === undefined || open === REPLAY) return
    for (const change of changes) {
      const position = open.position++
      for (const shape of this.#candidates(change)) this.#take(open, shape, change, position)
    }
    // Entries of a large transaction go to storage as they are made, not at its commit.
    if (open.buffered >= STAGE_ENTRIES) await this.#stage(open)
  }

  async onCommit(commit: TransactionCommit): Promise<void> {
    const open = this.#open
    this.#open = undefined
    if (open === undefined || open === REPLAY) return
    const appends: ShapeAppend[] = []
    for (const [shape, part] of open.parts) {
      if (shape.dropped) continue
      if (part.kind === MERGE_DECISION.hold) {
        this.#commitHeld(shape, { xid: open.xid, commitLsn: open.commitLsn, endLsn: commit.endLsn, changes: part.changes })
      } else if (part.kind === MERGE_DECISION.append) {
        const append = part.entries.finish()
        if (append) appends.push(append)
      } else if (part.kind === SUBQUERY) {
        const append = this.#subqueries.take(shape, { xid: open.xid, commitLsn: open.commitLsn, lsnText: open.lsnText, changes: part.changes })
        if (append) appends.push(append)
      }
    }
    this.#subqueries.advance(commit.endLsn)
    await this.#pipeline.commitTransaction(commit.endLsn, appends)
  }

  onIdle(walEnd: Lsn): void {
    this.#subqueries.advance(walEnd)
    this.#pipeline.idle(walEnd)
  }

  /** Storage started over at `durable` (a new slot or cluster): forget what was accepted. */
  reset(durable: Lsn): void {
    this.#pipeline.reset(durable)
    this.#merge.reset()
  }

  /** No more commits after this (the stream has stopped); resolves when the last one is durable. */
  async stop(): Promise<void> {
    await this.#subqueries.settled()
    return this.#pipeline.stop()
  }

  /** Resolves when everything handed to storage so far is durable. */
  flushed(): Promise<void> {
    return this.#pipeline.flushed()
  }

  /** One change for one candidate shape of the open transaction. */
  #take(open: OpenTransaction, shape: ActiveShape, change: Change, position: number): void {
    // A value an inner change may bring in routes the shape's outer changes from now on (I29).
    if (change.kind !== 'truncate') shape.subqueries?.outerRoute?.routed(change, open.commitLsn)
    let part = open.parts.get(shape)
    if (!part) open.parts.set(shape, (part = this.#startPart(open, shape)))
    if (shape.dropped) return
    // The common case first: this runs per change and candidate shape.
    if (part.kind === MERGE_DECISION.append) {
      const made = part.entries.add(change, position)
      if (made !== TRUNCATED) open.buffered += made
      else {
        this.#options.invalidate(shape, 'table truncated')
        open.parts.set(shape, SKIP)
      }
    } else if (part.kind === MERGE_DECISION.hold) {
      part.changes.push(change)
      this.#merge.hold(shape, 1)
    } else if (part.kind === SUBQUERY) {
      if (change.kind !== 'truncate') {
        part.changes.push({ change, position })
        this.#subqueries.hold(shape, 1)
      } else if (truncates(shape, change)) {
        this.#options.invalidate(shape, 'table truncated')
        open.parts.set(shape, SKIP)
      }
    }
  }

  #startPart(open: OpenTransaction, shape: ActiveShape): ShapePart {
    switch (this.#merge.decide(shape, open)) {
      case MERGE_DECISION.hold:
        return { kind: MERGE_DECISION.hold, changes: [] }
      case MERGE_DECISION.skip:
        return SKIP
      case MERGE_DECISION.append:
        if (shape.subqueries) return { kind: SUBQUERY, changes: [] }
        return { kind: MERGE_DECISION.append, entries: new ShapeEntries(shape, open, open.lsnText) }
    }
  }

  /** A transaction held whole for a shape, at its commit. */
  #commitHeld(shape: ActiveShape, tx: HeldTransaction): void {
    // The snapshot may have started while this transaction was arriving.
    if (shape.phase.kind === SHAPE_PHASE.waiting) shape.hold(tx)
    else {
      this.#merge.release(shape)
      this.#appendHeld(shape, tx)
    }
  }

  /** A held transaction, once its shape's snapshot started: appended unless the snapshot has it. */
  #appendHeld(shape: ActiveShape, tx: HeldTransaction): void {
    if (this.#merge.decide(shape, tx) !== MERGE_DECISION.append) return
    if (shape.subqueries) {
      this.#subqueries.takeHeld(shape, tx)
      return
    }
    const append = entriesOf(shape, tx)
    if (append === TRUNCATED) this.#options.invalidate(shape, 'table truncated')
    else if (append) void this.#pipeline.commitReleased(append)
  }

  async #stage(open: OpenTransaction): Promise<void> {
    const appends: ShapeAppend[] = []
    for (const part of open.parts.values()) {
      const append = part.kind === MERGE_DECISION.append ? part.entries.take() : undefined
      if (append) appends.push(append)
    }
    open.buffered = 0
    await this.#pipeline.stage(appends)
  }

  /** The shapes a change may concern (a candidate is not yet a match: its entries decide). */
  #candidates(change: Change): Iterable<ActiveShape> {
    if (change.kind === 'truncate') {
      const shapes = new Set<ActiveShape>()
      for (const relation of change.relations) {
        for (const shape of this.#index.shapesOf(relation.schema, relation.name)) shapes.add(shape)
        for (const shape of this.#subqueryRoutes.shapesOf(relation.schema, relation.name)) shapes.add(shape)
      }
      return shapes
    }
    const record = change.kind === 'delete' ? undefined : change.record
    const old = change.kind === 'insert' ? undefined : change.old
    const candidates = this.#index.candidates(change.relation, record, old)
    if (this.#subqueryRoutes.size === 0) return candidates
    const both = new Set(candidates)
    for (const shape of this.#subqueryRoutes.candidates(change.relation, record, old)) both.add(shape)
    return both
  }
}
