/**
 * A shape as the running server holds it, and the one owner of its state: its stored record, the
 * table it reads, and its lifecycle phase (docs/ARCHITECTURE.md I2, I3, I9). Every change of phase
 * is a method here; other modules read the phase and cannot set it.
 *
 * ```
 * waiting-for-snapshot ──startSnapshot──► snapshotting ──completeSnapshot──► following
 *        │ (held transactions)              │ merge: filtering ─passSnapshot─► append-all
 *        └──────────────┴───────── drop ────┴───────────────────────────────────┴──► dropped
 * ```
 * A shape loaded at start is following and filtering: transactions past the durable LSN may still
 * predate its snapshot. Dropped is final: a transition asked of a dropped shape (by a snapshot
 * task that has not noticed yet) changes nothing; any other out of order is a bug and throws.
 */
import { MustRefetchError, type InvalidRequestError } from '../errors.js'
import type { TableInfo } from '../pg/introspect.js'
import type { Lsn } from '../pg/lsn.js'
import type { Transaction } from '../replication/transaction.js'
import type { StoredShape } from '../storage/shape-log-store.js'
import type { BoundShape } from './shape-filter.js'
import type { ShapeSubqueries } from './subquery/shape-subqueries.js'
import type { CompiledWhere } from './where/compile-where.js'
import type { Visibility } from './xid-visibility.js'

export const SHAPE_PHASE = {
  /** The snapshot's visibility is not known yet: its transactions are held back. */
  waiting: 'waiting-for-snapshot',
  /** The snapshot's visibility is known and its rows are being written. */
  snapshotting: 'snapshotting',
  /** The snapshot is complete in storage; the log follows replication. */
  following: 'following',
  /** The shape can no longer be served: its clients refetch (or get its 400). */
  dropped: 'dropped',
} as const

/** How transactions join the log of a shape whose snapshot's visibility is known (I3). */
export const MERGE = {
  /** Transactions the snapshot shows are skipped. */
  filtering: 'filtering',
  /** Past the snapshot: every transaction is appended. */
  appendAll: 'append-all',
} as const

export type Merge =
  | { readonly kind: typeof MERGE.filtering; readonly visibility: Visibility }
  | { readonly kind: typeof MERGE.appendAll }

/**
 * A transaction kept for a shape until its snapshot's visibility is known. For a shape added
 * while the transaction was being received, only its later changes: the snapshot shows that
 * transaction (`SnapshotMerge.commitsMissedBy`), so they are skipped.
 */
export type HeldTransaction = Transaction

export type ShapePhase =
  | { readonly kind: typeof SHAPE_PHASE.waiting; readonly held: readonly HeldTransaction[] }
  | { readonly kind: typeof SHAPE_PHASE.snapshotting; readonly merge: Merge }
  | { readonly kind: typeof SHAPE_PHASE.following; readonly merge: Merge }
  | {
      readonly kind: typeof SHAPE_PHASE.dropped
      /** Set when the request itself cannot be served (its snapshot failed for good): a 400, not a 409. */
      readonly failure: InvalidRequestError | undefined
      /** Its snapshot had completed before it was dropped. */
      readonly snapshotComplete: boolean
    }

type Phase =
  | { readonly kind: typeof SHAPE_PHASE.waiting; readonly held: HeldTransaction[] }
  | Exclude<ShapePhase, { readonly kind: typeof SHAPE_PHASE.waiting }>

/**
 * What a shape keeps of its compiled where. A change is decided by `matches`, which holds on to
 * the evaluator only when it needs it: an equality-only where matches by key, and its unused
 * evaluator's closures were a tenth of an idle shape's memory. The SQL, rendered as a tree of
 * concatenations (a dozen strings), is kept as one flat copy.
 */
export type ShapeWhere = Omit<CompiledWhere, 'evaluate'>

/** Where a shape's `heldFrom` comes from: its subqueries, or the owner's feed in an HTTP worker. */
export interface HeldFrom {
  readonly heldFrom: Lsn | undefined
}

function withoutEvaluator({ evaluate: _unused, ...where }: CompiledWhere): ShapeWhere {
  return { ...where, sql: Buffer.from(where.sql).toString() }
}

export class ActiveShape {
  readonly stored: StoredShape
  /** The shape's table narrowed to its selected columns (all of them without `columns`). */
  readonly table: TableInfo
  /** The compiled `where`; undefined for the whole table. */
  readonly where: ShapeWhere | undefined
  /** The results of the where's subqueries, if it has any (docs/ARCHITECTURE.md I25). */
  readonly subqueries: ShapeSubqueries | undefined
  readonly #held: HeldFrom | undefined
  #phase: Phase

  private constructor(stored: StoredShape, bound: BoundShape, phase: Phase, subqueries?: ShapeSubqueries, held?: HeldFrom) {
    this.stored = stored
    this.table = bound.table
    this.where = bound.where && withoutEvaluator(bound.where)
    this.subqueries = subqueries
    this.#held = held ?? subqueries
    this.#phase = phase
  }

  /** A new shape: its snapshot has yet to start. */
  static waiting(stored: StoredShape, bound: BoundShape, subqueries?: ShapeSubqueries): ActiveShape {
    return new ActiveShape(stored, bound, { kind: SHAPE_PHASE.waiting, held: [] }, subqueries)
  }

  /**
   * An HTTP worker's copy of the owner's shape (docs/ARCHITECTURE.md I27): it routes nothing, and
   * its `heldFrom` is the owner's, as the feed last said.
   */
  static mirrored(stored: StoredShape, bound: BoundShape, held: HeldFrom): ActiveShape {
    return new ActiveShape(stored, bound, { kind: SHAPE_PHASE.waiting, held: [] }, undefined, held)
  }

  /** A shape loaded from storage, its snapshot complete: transactions it shows are still skipped. */
  static resumed(stored: StoredShape, bound: BoundShape, visibility: Visibility): ActiveShape {
    return new ActiveShape(stored, bound, { kind: SHAPE_PHASE.following, merge: { kind: MERGE.filtering, visibility } })
  }

  get phase(): ShapePhase {
    return this.#phase
  }

  get dropped(): boolean {
    return this.#phase.kind === SHAPE_PHASE.dropped
  }

  /** Set while a move-in is read: the log holds nothing at or after this commit LSN yet (I16, I25). */
  get heldFrom(): Lsn | undefined {
    return this.#held?.heldFrom
  }

  /** The snapshot is complete in storage (it stays so once the shape is dropped). */
  get snapshotComplete(): boolean {
    const phase = this.#phase
    return phase.kind === SHAPE_PHASE.following || (phase.kind === SHAPE_PHASE.dropped && phase.snapshotComplete)
  }

  /** Keeps a committed transaction until the snapshot's visibility is known. */
  hold(tx: HeldTransaction): void {
    this.#expect(SHAPE_PHASE.waiting)?.held.push(tx)
  }

  /** The snapshot's visibility is known: returns the held transactions, for the merge to pass on. */
  startSnapshot(visibility: Visibility): readonly HeldTransaction[] {
    const waiting = this.#expect(SHAPE_PHASE.waiting)
    if (!waiting) return []
    this.#phase = { kind: SHAPE_PHASE.snapshotting, merge: { kind: MERGE.filtering, visibility } }
    return waiting.held
  }

  completeSnapshot(): void {
    const snapshotting = this.#expect(SHAPE_PHASE.snapshotting)
    if (snapshotting) this.#phase = { kind: SHAPE_PHASE.following, merge: snapshotting.merge }
  }

  /** A transaction committed after the snapshot was taken: so does every later one (I3). */
  passSnapshot(): void {
    const phase = this.#phase
    if (phase.kind === SHAPE_PHASE.dropped) return
    if (phase.kind === SHAPE_PHASE.waiting) throw this.#wrongPhase('snapshotting or following')
    this.#phase = { kind: phase.kind, merge: { kind: MERGE.appendAll } }
  }

  /** Ends the shape; its held transactions go with it. False when it was already dropped. */
  drop(failure?: InvalidRequestError): boolean {
    if (this.#phase.kind === SHAPE_PHASE.dropped) return false
    this.#phase = { kind: SHAPE_PHASE.dropped, failure, snapshotComplete: this.snapshotComplete }
    return true
  }

  /** The phase when it is `kind`; undefined when the shape was dropped. */
  #expect<K extends Phase['kind']>(kind: K): Extract<Phase, { readonly kind: K }> | undefined {
    if (this.#phase.kind === kind) return this.#phase as Extract<Phase, { readonly kind: K }>
    if (this.#phase.kind === SHAPE_PHASE.dropped) return undefined
    throw this.#wrongPhase(kind)
  }

  #wrongPhase(expected: string): Error {
    return new Error(`shape ${this.stored.handle} is ${this.#phase.kind}, not ${expected}`)
  }
}

/** What a request waiting on a dropped shape gets: its 400 when the shape can never work, else a 409. */
export function droppedError(shape: ActiveShape): InvalidRequestError | MustRefetchError {
  const phase = shape.phase
  return (phase.kind === SHAPE_PHASE.dropped ? phase.failure : undefined) ?? new MustRefetchError(undefined, 'shape was dropped')
}
