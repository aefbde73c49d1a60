/**
 * The replication sink: routes each change of a committed transaction to the shapes it may
 * concern (a hash lookup for equality-filtered shapes, see `routing-index.ts`), merges it with
 * their snapshots (skip what a snapshot already holds), encodes each change once per shape
 * (where and columns applied) and commits one storage batch per transaction. Acknowledges to
 * PostgreSQL only after the batch is durable (docs/ARCHITECTURE.md I5).
 */
import type { Logger } from '../log.js'
import { maxLsn, type Lsn } from '../pg/lsn.js'
import type { ReplicationSink } from '../replication/replication-stream.js'
import type { Change, Relation, Transaction, TransactionBegin, TransactionCommit } from '../replication/transaction.js'
import type { ShapeAppend, ShapeLogStore } from '../storage/shape-log-store.js'
import { MERGE_PHASE, type ActiveShape, type HeldTransaction } from './active-shape.js'
import { encodeChange, encodeContext, type ChangeMessage, type EncodeContext, type ShapeEncoding } from './change-encoder.js'
import { relationPrefix } from './row-key.js'
import { RoutingIndex } from './routing-index.js'
import { schemaChange } from './schema-drift.js'
import type { ShapeNotifier } from './shape-notifier.js'
import { UnconfirmedCommits, type RoutingMark } from './unconfirmed-commits.js'
import { commitsAfterSnapshot, isVisibleInSnapshot, type Visibility } from './xid-visibility.js'

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

/**
 * Log entries handed to storage and not yet committed before the stream is made to wait. Room
 * for several storage transactions, so routing goes on while one is written to disk.
 */
const MAX_ENTRIES_IN_FLIGHT = 50_000
/** … and commits, so that transactions with no entries for any shape cannot pile up either. */
const MAX_COMMITS_IN_FLIGHT = 1_000
/** Entries a transaction may buffer before they are staged in storage. */
const STAGE_ENTRIES = 5_000

/** A transaction being received. */
interface OpenTransaction {
  readonly xid: number
  readonly commitLsn: Lsn
  /** `commitLsn` as the text every message's `lsn` header carries, made once. */
  readonly lsnText: string
  /** Already in storage (a replay after reconnecting or restarting). */
  readonly skip: boolean
  position: number
  readonly shapes: Map<ActiveShape, ShapePart>
  /** Entries made and not yet staged, across shapes. */
  buffered: number
}

/** One shape's part of the open transaction. */
interface ShapePart {
  readonly context: EncodeContext
  /** The snapshot already holds this transaction, or the shape ended. */
  skip: boolean
  pending: ChangeMessage | undefined
  /** Wire JSON of the entries made and not yet staged; the first is at op `firstOp`. */
  entries: string[]
  firstOp: number
  /** The op of the next entry. */
  op: number
  /** Changes kept whole for a shape whose snapshot visibility is not known yet. */
  held: Change[] | undefined
}
const IDLE_COMMIT_EVERY_MS = 1_000

export class ShapeRouter implements ReplicationSink {
  readonly #options: ShapeRouterOptions
  readonly #index = new RoutingIndex<ActiveShape>()
  /** Every routed shape, for the rare look-up by table OID. */
  readonly #shapes = new Set<ActiveShape>()
  readonly #encodings = new WeakMap<ActiveShape, ShapeEncoding>()
  /** Changes held per shape awaiting its snapshot: its committed `held` and its open part. */
  readonly #heldChanges = new Map<ActiveShape, number>()
  #heldTotal = 0
  #unconfirmed = new UnconfirmedCommits()
  /** Shapes awaiting their snapshot: where they joined the stream of transactions. */
  readonly #joinedAt = new Map<ActiveShape, RoutingMark>()
  /** End LSN of the last transaction taken in; replays before it are skipped. */
  #accepted: Lsn
  /** Commits not yet known to be done, oldest first, with their entry counts. */
  readonly #inFlight: { readonly committed: Promise<void>; readonly entries: number }[] = []
  #entriesInFlight = 0
  #lastCommit: Promise<void> = Promise.resolve()
  #lastIdleCommitMs = 0
  #idlePending: Lsn | undefined
  #idleTimer: NodeJS.Timeout | undefined
  #open: OpenTransaction | undefined

  constructor(options: ShapeRouterOptions) {
    this.#options = options
    this.#accepted = options.store.committedLsn
  }

  add(shape: ActiveShape): void {
    const { schema, name } = shape.table.table
    this.#index.add(shape, schema, name, shape.where?.equalityIndex)
    this.#shapes.add(shape)
    // The open transaction counts as routed before the shape once any of its changes were: the
    // shape's snapshot then shows it (`commitsMissedBy`), and the changes it gets are skipped.
    if (shape.phase === MERGE_PHASE.awaitingSnapshot) {
      const next = this.#unconfirmed.next
      this.#joinedAt.set(shape, (this.#open?.position === 0 ? next - 1 : next) as RoutingMark)
    }
  }

  remove(shape: ActiveShape): void {
    this.#index.remove(shape)
    this.#shapes.delete(shape)
    this.#joinedAt.delete(shape)
    this.#release(shape)
    // A dropped shape may wait a long time for its snapshot slot: its held changes go now.
    shape.held.length = 0
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

  /**
   * Transactions routed before `shape` joined that this snapshot of it does not show (see
   * `unconfirmed-commits.ts`): it must be taken again once they are visible.
   */
  commitsMissedBy(shape: ActiveShape, visibility: Visibility): number[] {
    const joinedAt = this.#joinedAt.get(shape)
    return joinedAt === undefined ? [] : this.#unconfirmed.missedBy(visibility, joinedAt)
  }

  /** Any snapshot: the routed transactions it shows need no more watching. */
  confirmCommits(visibility: Visibility): void {
    this.#unconfirmed.confirm(visibility)
  }

  /** Routed transactions no snapshot has shown yet. */
  get unconfirmedCommits(): number {
    return this.#unconfirmed.size
  }

  /** The snapshot's visibility is known: release the transactions held back for it. */
  snapshotStarted(shape: ActiveShape): void {
    shape.phase = MERGE_PHASE.filtering
    this.#joinedAt.delete(shape)
    const held = shape.held.splice(0)
    // The open transaction's part, if any, stays counted until its commit hands it on.
    this.#unhold(shape, held.reduce((n, tx) => n + tx.changes.length, 0))
    for (const tx of held) {
      const append = this.#appendFor(shape, tx)
      if (append) this.#commit({ durableLsn: 0n as Lsn, appends: [append] }, [shape.stored.id])
    }
  }

  /** A whole transaction at once (benchmarks and tests); the stream uses the three steps below. */
  async onTransaction(tx: Transaction): Promise<void> {
    this.onBegin(tx)
    await this.onChanges(tx.changes)
    await this.onCommit(tx)
  }

  onBegin(begin: TransactionBegin): void {
    // An open transaction that never committed will be sent again from its start.
    if (this.#open) {
      this.#options.store.discardStaged()
      for (const [shape, part] of this.#open.shapes) if (part.held) this.#unhold(shape, part.held.length)
    }
    this.#unconfirmed.record(begin.xid)
    this.#open = {
      xid: begin.xid,
      commitLsn: begin.commitLsn,
      lsnText: String(begin.commitLsn),
      skip: begin.commitLsn < this.#accepted,
      position: 0,
      shapes: new Map(),
      buffered: 0,
    }
  }

  async onChanges(changes: readonly Change[]): Promise<void> {
    const open = this.#open
    if (!open) return
    if (open.skip) {
      open.position += changes.length
      return
    }
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
    if (!open || open.skip) return
    this.#accepted = maxLsn(this.#accepted, commit.endLsn)
    const appends: ShapeAppend[] = []
    const touched: number[] = []
    for (const [shape, part] of open.shapes) {
      if (part.held) {
        if (shape.dropped) continue
        const tx: HeldTransaction = { xid: open.xid, commitLsn: open.commitLsn, endLsn: commit.endLsn, changes: part.held }
        // The snapshot may have started while this transaction was arriving.
        if (shape.phase === MERGE_PHASE.awaitingSnapshot) shape.held.push(tx)
        else {
          this.#release(shape)
          const append = this.#appendFor(shape, tx)
          if (append) this.#commit({ durableLsn: 0n as Lsn, appends: [append] }, [shape.stored.id])
        }
        continue
      }
      if (part.skip || shape.dropped) continue
      if (part.pending) {
        part.pending.headers.last = true
        this.#toEntry(open, part, part.pending)
        part.pending = undefined
      }
      if (part.entries.length > 0) {
        appends.push({ shapeId: shape.stored.id, tx: open.commitLsn, firstOp: part.firstOp, entries: part.entries })
        touched.push(shape.stored.id)
      }
    }
    this.#commit({ durableLsn: commit.endLsn, appends }, touched)
    // Commits finish in order: waiting for the oldest frees room without draining the pipeline.
    while (this.#entriesInFlight > MAX_ENTRIES_IN_FLIGHT || this.#inFlight.length > MAX_COMMITS_IN_FLIGHT) await this.#inFlight[0]!.committed
  }

  /** One change for one candidate shape of the open transaction. */
  #take(open: OpenTransaction, shape: ActiveShape, change: Change, position: number): void {
    let part = open.shapes.get(shape)
    if (!part) {
      part = this.#startPart(open, shape)
      open.shapes.set(shape, part)
    }
    if (shape.dropped) return
    if (part.held) {
      part.held.push(change)
      this.#hold(shape, 1)
      return
    }
    if (part.skip) return
    const { schema, name } = shape.table.table
    if (change.kind === 'truncate') {
      if (change.relations.some((r) => r.schema === schema && r.name === name)) {
        this.#options.invalidate(shape, 'table truncated')
        part.skip = true
      }
      return
    }
    if (change.relation.schema !== schema || change.relation.name !== name) return
    for (const message of encodeChange(part.context, change, position)) {
      // The last message of the shape's part is held back until commit: it gets `last: true`.
      if (part.pending) this.#toEntry(open, part, part.pending)
      part.pending = message
    }
  }

  /** Where a shape stands for this transaction, decided at its first change (docs/ARCHITECTURE.md I3). */
  #startPart(open: OpenTransaction, shape: ActiveShape): ShapePart {
    const context = encodeContext(this.#shapeEncoding(shape), open.lsnText, open.xid)
    const part: ShapePart = { context, skip: false, pending: undefined, entries: [], firstOp: 0, op: 0, held: undefined }
    if (shape.phase === MERGE_PHASE.awaitingSnapshot) part.held = []
    else if (shape.phase === MERGE_PHASE.filtering && shape.visibility) {
      if (isVisibleInSnapshot(open.xid, shape.visibility)) part.skip = true
      else if (commitsAfterSnapshot(open, shape.visibility)) shape.phase = MERGE_PHASE.appendAll
    }
    return part
  }

  /**
   * Counts changes held for a shape awaiting its snapshot. Past the limit, the shape holding the
   * most is dropped: its clients refetch, and memory stays bounded however long the snapshot
   * queue and however heavy the writes.
   */
  #hold(shape: ActiveShape, changes: number): void {
    this.#heldChanges.set(shape, (this.#heldChanges.get(shape) ?? 0) + changes)
    this.#heldTotal += changes
    if (this.#heldTotal <= this.#options.maxHeldChanges) return
    let largest: ActiveShape | undefined
    let most = 0
    for (const [candidate, count] of this.#heldChanges) {
      // Only a shape still waiting can be dropped to make room; a started snapshot's open part ends at its commit.
      if (count > most && candidate.phase === MERGE_PHASE.awaitingSnapshot) [largest, most] = [candidate, count]
    }
    if (!largest) return
    this.#release(largest)
    this.#options.log.warn(
      { handle: largest.stored.handle, heldChanges: most, limit: this.#options.maxHeldChanges },
      'dropping a shape whose snapshot waited for a slot while more changes arrived than SLUICE_MAX_HELD_CHANGES allows; ' +
        'its clients refetch. Raise SLUICE_MAX_CONCURRENT_SNAPSHOTS, or SLUICE_MAX_HELD_CHANGES if memory allows.',
    )
    this.#options.invalidate(largest, 'too many changes arrived while its snapshot waited for a slot')
  }

  /** Changes no longer held: handed on, or of a transaction that will be sent again. */
  #unhold(shape: ActiveShape, changes: number): void {
    const count = this.#heldChanges.get(shape)
    if (count === undefined) return
    const left = Math.max(0, count - changes)
    this.#heldChanges.set(shape, left)
    this.#heldTotal -= count - left
  }

  #release(shape: ActiveShape): void {
    const count = this.#heldChanges.get(shape)
    if (count === undefined) return
    this.#heldChanges.delete(shape)
    this.#heldTotal -= count
  }

  #toEntry(open: OpenTransaction, part: ShapePart, message: ChangeMessage): void {
    part.entries.push(JSON.stringify(message))
    part.op++
    open.buffered++
  }

  async #stage(open: OpenTransaction): Promise<void> {
    const appends: ShapeAppend[] = []
    for (const [shape, part] of open.shapes) {
      if (part.entries.length === 0) continue
      appends.push({ shapeId: shape.stored.id, tx: open.commitLsn, firstOp: part.firstOp, entries: part.entries })
      part.entries = []
      part.firstOp = part.op
    }
    open.buffered = 0
    // A failed write is a storage failure like a failed commit, not a replication problem.
    await this.#options.store.stage(appends).catch((error: unknown) => this.#options.onStorageFailure(error))
  }

  onIdle(walEnd: Lsn): void {
    if (walEnd <= this.#accepted && walEnd <= this.#options.store.committedLsn) return
    const waitMs = IDLE_COMMIT_EVERY_MS - (Date.now() - this.#lastIdleCommitMs)
    if (waitMs > 0) {
      // Too soon for another idle commit, but do not drop this position: PostgreSQL sends the
      // next keepalive only after we acknowledge (or after wal_sender_timeout / 2), so the
      // durable LSN — and the slot — would otherwise stall behind WAL that holds no changes.
      this.#idlePending = walEnd
      this.#idleTimer ??= setTimeout(() => {
        this.#idleTimer = undefined
        const pending = this.#idlePending
        this.#idlePending = undefined
        if (pending !== undefined) this.onIdle(pending)
      }, waitMs)
      return
    }
    this.#lastIdleCommitMs = Date.now()
    this.#accepted = maxLsn(this.#accepted, walEnd)
    this.#commit({ durableLsn: walEnd, appends: [] }, [])
  }

  /** Storage started over at `durable` (a new slot or cluster): forget what was accepted. */
  reset(durable: Lsn): void {
    this.#cancelIdleCommit()
    this.#accepted = durable
    // xids of another history: a new cluster's snapshots might never show them.
    this.#unconfirmed = new UnconfirmedCommits()
  }

  /** No more commits after this (the stream has stopped); resolves when the last one is durable. */
  stop(): Promise<void> {
    this.#cancelIdleCommit()
    return this.flushed()
  }

  #cancelIdleCommit(): void {
    if (this.#idleTimer) clearTimeout(this.#idleTimer)
    this.#idleTimer = undefined
    this.#idlePending = undefined
  }

  /** Resolves when everything handed to storage so far is durable. */
  async flushed(): Promise<void> {
    await this.#lastCommit
    await this.#options.store.flushed()
  }

  #commit(batch: { durableLsn: Lsn; appends: ShapeAppend[] }, touched: number[]): void {
    const { store, notifier, acknowledge } = this.#options
    const failed = (error: unknown) => this.#options.onStorageFailure(error)
    let entries = 0
    for (const append of batch.appends) entries += append.entries.length
    const record = { committed: Promise.resolve(), entries }
    const settled = () => {
      const at = this.#inFlight.indexOf(record)
      if (at >= 0) this.#inFlight.splice(at, 1)
      this.#entriesInFlight -= entries
    }
    record.committed = store.commit(batch).then(({ durable }) => {
      settled()
      // Readers are told as soon as they can read it; PostgreSQL only once it is on disk.
      for (const id of touched) notifier.notify(id)
      if (batch.durableLsn > 0n) durable.then(() => acknowledge(store.durableLsn), failed)
    }, (error: unknown) => {
      settled()
      failed(error)
    })
    this.#inFlight.push(record)
    this.#entriesInFlight += entries
    this.#lastCommit = record.committed
  }


  /** The parts of a shape's encoding context that never change, computed once per shape. */
  #shapeEncoding(shape: ActiveShape): ShapeEncoding {
    let encoding = this.#encodings.get(shape)
    if (!encoding) {
      const { schema, name } = shape.table.table
      encoding = {
        keyPrefix: relationPrefix(shape.table.table),
        relationName: [schema, name] as const,
        primaryKey: shape.table.primaryKey,
        replica: shape.stored.definition.replica,
        matches: shape.where?.matches,
        columns: shape.stored.definition.columns ? new Set(shape.table.columns.map((c) => c.name)) : undefined,
      }
      this.#encodings.set(shape, encoding)
    }
    return encoding
  }

  /** The shapes a change may concern (a candidate is not yet a match: the encoder decides). */
  #candidates(change: Change): Iterable<ActiveShape> {
    if (change.kind === 'truncate') {
      const shapes = new Set<ActiveShape>()
      for (const relation of change.relations) for (const shape of this.#index.shapesOf(relation.schema, relation.name)) shapes.add(shape)
      return shapes
    }
    const record = change.kind === 'delete' ? undefined : change.record
    const old = change.kind === 'insert' ? undefined : change.old
    return this.#index.candidates(change.relation, record, old)
  }

  /** A held transaction's entries for its shape, or nothing when the snapshot already has it. */
  #appendFor(shape: ActiveShape, tx: HeldTransaction): ShapeAppend | undefined {
    if (shape.dropped) return undefined
    if (shape.phase === MERGE_PHASE.filtering && shape.visibility) {
      if (isVisibleInSnapshot(tx.xid, shape.visibility)) return undefined
      if (commitsAfterSnapshot(tx, shape.visibility)) shape.phase = MERGE_PHASE.appendAll
    }
    const { schema, name } = shape.table.table
    const context = encodeContext(this.#shapeEncoding(shape), String(tx.commitLsn), tx.xid)
    const messages: ChangeMessage[] = []
    for (let position = 0; position < tx.changes.length; position++) {
      const change: Change = tx.changes[position]!
      if (change.kind === 'truncate') {
        if (change.relations.some((r) => r.schema === schema && r.name === name)) {
          this.#options.invalidate(shape, 'table truncated')
          return undefined
        }
        continue
      }
      if (change.relation.schema !== schema || change.relation.name !== name) continue
      messages.push(...encodeChange(context, change, position))
    }
    if (messages.length === 0) return undefined
    messages[messages.length - 1]!.headers.last = true
    const entries = messages.map((message) => JSON.stringify(message))
    return { shapeId: shape.stored.id, tx: tx.commitLsn, firstOp: 0, entries }
  }
}
