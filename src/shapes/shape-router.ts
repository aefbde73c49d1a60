/**
 * The replication sink: routes each change of a committed transaction to the shapes it may
 * concern (a hash lookup for equality-filtered shapes, see `routing-index.ts`), merges it with
 * their snapshots (skip what a snapshot already holds), encodes each change once per shape
 * (where and columns applied) and commits one storage batch per transaction. Acknowledges to
 * PostgreSQL only after the batch is durable (DESIGN invariant: ack ≤ durable).
 */
import type { Logger } from '../log.js'
import { maxLsn, type Lsn } from '../pg/lsn.js'
import type { ReplicationSink } from '../replication/replication-stream.js'
import type { Change, Relation, Transaction } from '../replication/transaction.js'
import type { ShapeAppend, ShapeLogStore, LogEntry } from '../storage/shape-log-store.js'
import { MERGE_PHASE, type ActiveShape } from './active-shape.js'
import { encodeChange, type ChangeMessage, type EncodeContext } from './change-encoder.js'
import { relationPrefix } from './row-key.js'
import { RoutingIndex } from './routing-index.js'
import { schemaChange } from './schema-drift.js'
import type { ShapeNotifier } from './shape-notifier.js'
import { isAtOrAfterXmax, isVisibleInSnapshot } from './xid-visibility.js'

export interface ShapeRouterOptions {
  readonly store: ShapeLogStore
  readonly notifier: ShapeNotifier
  readonly acknowledge: (durable: Lsn) => void
  /** A shape that can no longer be kept correct (e.g. its table was truncated). */
  readonly invalidate: (shape: ActiveShape, reason: string) => void
  readonly log: Logger
}

/** Commits in flight before the stream is made to wait. */
const MAX_IN_FLIGHT = 64
const IDLE_COMMIT_EVERY_MS = 1_000

export class ShapeRouter implements ReplicationSink {
  readonly #options: ShapeRouterOptions
  readonly #index = new RoutingIndex<ActiveShape>()
  /** Every routed shape, for the rare look-up by table OID. */
  readonly #shapes = new Set<ActiveShape>()
  readonly #contexts = new WeakMap<ActiveShape, Omit<EncodeContext, 'lsn' | 'xid'>>()
  /** End LSN of the last transaction taken in; replays before it are skipped. */
  #accepted: Lsn
  #inFlight = 0
  #lastCommit: Promise<void> = Promise.resolve()
  #lastIdleCommitMs = 0
  #idlePending: Lsn | undefined
  #idleTimer: NodeJS.Timeout | undefined

  constructor(options: ShapeRouterOptions) {
    this.#options = options
    this.#accepted = options.store.durableLsn
  }

  add(shape: ActiveShape): void {
    const { schema, name } = shape.table.table
    this.#index.add(shape, schema, name, shape.where?.equalityIndex)
    this.#shapes.add(shape)
  }

  remove(shape: ActiveShape): void {
    this.#index.remove(shape)
    this.#shapes.delete(shape)
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

  /** The snapshot's visibility is known: release the transactions held back for it. */
  snapshotStarted(shape: ActiveShape): void {
    shape.phase = MERGE_PHASE.filtering
    const held = shape.held.splice(0)
    for (const tx of held) {
      const append = this.#appendFor(shape, tx)
      if (append) this.#commit({ durableLsn: 0n as Lsn, appends: [append] }, [shape.stored.id])
    }
  }

  async onTransaction(tx: Transaction): Promise<void> {
    if (tx.commitLsn < this.#accepted) return
    this.#accepted = maxLsn(this.#accepted, tx.endLsn)
    const appends: ShapeAppend[] = []
    const touched: number[] = []
    for (const [shape, positions] of this.#route(tx)) {
      if (shape.phase === MERGE_PHASE.awaitingSnapshot) {
        shape.held.push(tx)
        continue
      }
      const append = this.#appendFor(shape, tx, positions)
      if (append) {
        appends.push(append)
        touched.push(shape.stored.id)
      }
    }
    this.#commit({ durableLsn: tx.endLsn, appends }, touched)
    if (this.#inFlight >= MAX_IN_FLIGHT) await this.#lastCommit
  }

  onIdle(walEnd: Lsn): void {
    if (walEnd <= this.#accepted && walEnd <= this.#options.store.durableLsn) return
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
  }

  /** No more commits after this (the stream has stopped); resolves when the last one is durable. */
  stop(): Promise<void> {
    this.#cancelIdleCommit()
    return this.#lastCommit
  }

  #cancelIdleCommit(): void {
    if (this.#idleTimer) clearTimeout(this.#idleTimer)
    this.#idleTimer = undefined
    this.#idlePending = undefined
  }

  /** Resolves when everything handed to storage so far is durable. */
  flushed(): Promise<void> {
    return this.#lastCommit
  }

  #commit(batch: { durableLsn: Lsn; appends: ShapeAppend[] }, touched: number[]): void {
    this.#inFlight++
    const { store, notifier, acknowledge } = this.#options
    this.#lastCommit = store.commit(batch).then(() => {
      this.#inFlight--
      for (const id of touched) notifier.notify(id)
      if (batch.durableLsn > 0n) acknowledge(store.durableLsn)
    })
  }

  /** The parts of a shape's encoding context that never change, computed once per shape. */
  #shapeContext(shape: ActiveShape): Omit<EncodeContext, 'lsn' | 'xid'> {
    let context = this.#contexts.get(shape)
    if (!context) {
      const { schema, name } = shape.table.table
      context = {
        keyPrefix: relationPrefix(shape.table.table),
        relationName: [schema, name] as const,
        primaryKey: shape.table.primaryKey,
        replica: shape.stored.definition.replica,
        ...(shape.where ? { matches: shape.where.matches } : {}),
        ...(shape.stored.definition.columns ? { columns: new Set(shape.table.columns.map((c) => c.name)) } : {}),
      }
      this.#contexts.set(shape, context)
    }
    return context
  }

  /** Each shape the transaction may concern, with the positions of its changes for that shape. */
  #route(tx: Transaction): Map<ActiveShape, number[]> {
    const routed = new Map<ActiveShape, number[]>()
    const add = (shape: ActiveShape, position: number) => {
      const positions = routed.get(shape)
      if (positions) positions.push(position)
      else routed.set(shape, [position])
    }
    for (let position = 0; position < tx.changes.length; position++) {
      const change = tx.changes[position]!
      if (change.kind === 'truncate') {
        for (const relation of change.relations) {
          for (const shape of this.#index.shapesOf(relation.schema, relation.name)) add(shape, position)
        }
        continue
      }
      const record = change.kind === 'delete' ? undefined : change.record
      const old = change.kind === 'insert' ? undefined : change.old
      for (const shape of this.#index.candidates(change.relation, record, old)) add(shape, position)
    }
    return routed
  }

  /**
   * The shape's entries for one transaction, or nothing when the snapshot already has it.
   * `positions`: the changes routed to this shape; all of the transaction's when absent.
   */
  #appendFor(shape: ActiveShape, tx: Transaction, positions?: readonly number[]): ShapeAppend | undefined {
    if (shape.dropped) return undefined
    if (shape.phase === MERGE_PHASE.filtering && shape.visibility) {
      if (isVisibleInSnapshot(tx.xid, shape.visibility)) return undefined
      if (isAtOrAfterXmax(tx.xid, shape.visibility)) shape.phase = MERGE_PHASE.appendAll
    }
    const { schema, name } = shape.table.table
    const context: EncodeContext = { ...this.#shapeContext(shape), lsn: String(tx.commitLsn), xid: tx.xid }
    const messages: ChangeMessage[] = []
    const count = positions ? positions.length : tx.changes.length
    for (let i = 0; i < count; i++) {
      const position = positions ? positions[i]! : i
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
    const entries: LogEntry[] = messages.map((message, op) => ({
      offset: { tx: tx.commitLsn, op },
      bytes: Buffer.from(JSON.stringify(message)),
    }))
    return { shapeId: shape.stored.id, entries }
  }
}
