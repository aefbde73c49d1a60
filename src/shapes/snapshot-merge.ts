/**
 * The snapshot/log merge (docs/ARCHITECTURE.md I2, I3): for each shape and transaction, whether
 * the transaction is held (the shape's snapshot has not started), skipped (the snapshot shows it)
 * or appended; which routed transactions a new shape's snapshot must show; and the bound on the
 * changes held meanwhile (SLUICE_MAX_HELD_CHANGES, I11). No storage and no database: the router
 * feeds it, so it is tested alone.
 */
import type { Logger } from '../log.js'
import type { Lsn } from '../pg/lsn.js'
import { MERGE, SHAPE_PHASE, type ActiveShape, type HeldTransaction } from './active-shape.js'
import { UnconfirmedCommits, type RoutingMark } from './unconfirmed-commits.js'
import { commitsAfterSnapshot, isVisibleInSnapshot, type Visibility } from './xid-visibility.js'

export const MERGE_DECISION = {
  /** The snapshot's visibility is not known yet: keep the changes until it is. */
  hold: 'hold',
  /** The snapshot already shows the transaction, or the shape is gone. */
  skip: 'skip',
  append: 'append',
} as const
export type MergeDecision = (typeof MERGE_DECISION)[keyof typeof MERGE_DECISION]

export interface SnapshotMergeOptions {
  /** Row changes held at most, over all shapes, for shapes whose snapshot waits for a slot. */
  readonly maxHeldChanges: number
  /** A shape that can no longer be kept correct: here, one that held too many changes. */
  readonly invalidate: (shape: ActiveShape, reason: string) => void
  readonly log: Logger
}

export class SnapshotMerge {
  readonly #options: SnapshotMergeOptions
  /** Changes held per shape awaiting its snapshot: its held transactions and its open part. */
  readonly #heldChanges = new Map<ActiveShape, number>()
  #heldTotal = 0
  #unconfirmed = new UnconfirmedCommits()
  /** Shapes awaiting their snapshot: where they joined the stream of transactions. */
  readonly #joinedAt = new Map<ActiveShape, RoutingMark>()

  constructor(options: SnapshotMergeOptions) {
    this.#options = options
  }

  /**
   * How `shape` takes a transaction, decided once per shape and transaction (I3). A filtering
   * shape that meets a transaction committed after its snapshot appends every later one unchecked.
   */
  decide(shape: ActiveShape, tx: { readonly xid: number; readonly commitLsn: Lsn }): MergeDecision {
    const phase = shape.phase
    switch (phase.kind) {
      case SHAPE_PHASE.waiting:
        return MERGE_DECISION.hold
      case SHAPE_PHASE.dropped:
        return MERGE_DECISION.skip
      case SHAPE_PHASE.snapshotting:
      case SHAPE_PHASE.following:
        if (phase.merge.kind === MERGE.filtering) {
          if (isVisibleInSnapshot(tx.xid, phase.merge.visibility)) return MERGE_DECISION.skip
          if (commitsAfterSnapshot(tx, phase.merge.visibility)) shape.passSnapshot()
        }
        return MERGE_DECISION.append
    }
  }

  /** A transaction is being routed (in stream order). */
  record(xid: number): void {
    this.#unconfirmed.record(xid)
  }

  /**
   * A shape joins the router. The transaction being received counts as routed before the shape
   * once any of its changes were (the shape's snapshot then shows it, `commitsMissedBy`, and the
   * changes the shape gets of it are skipped); `openUnrouted`: one is open and none were yet.
   */
  join(shape: ActiveShape, openUnrouted: boolean): void {
    if (shape.phase.kind !== SHAPE_PHASE.waiting) return
    const next = this.#unconfirmed.next
    this.#joinedAt.set(shape, (openUnrouted ? next - 1 : next) as RoutingMark)
  }

  /** The shape left the router: what it held goes now, though its snapshot may wait a long time. */
  leave(shape: ActiveShape): void {
    this.#joinedAt.delete(shape)
    this.release(shape)
  }

  /**
   * Transactions routed before `shape` joined that this snapshot of it does not show (see
   * `unconfirmed-commits.ts`): it must be taken again once they are visible (I2).
   */
  commitsMissedBy(shape: ActiveShape, visibility: Visibility): number[] {
    const joinedAt = this.#joinedAt.get(shape)
    return joinedAt === undefined ? [] : this.#unconfirmed.missedBy(visibility, joinedAt)
  }

  /** Where the stream of routed transactions is now (a move-in's read must show those before it, I25). */
  routingMark(): RoutingMark {
    return this.#unconfirmed.next
  }

  /** Transactions routed before `mark` that this snapshot does not show yet. */
  commitsMissedBefore(visibility: Visibility, mark: RoutingMark): number[] {
    return this.#unconfirmed.missedBy(visibility, mark)
  }

  /** Any snapshot: the routed transactions it shows need no more watching. */
  confirmCommits(visibility: Visibility): void {
    this.#unconfirmed.confirm(visibility)
  }

  get unconfirmedCommits(): number {
    return this.#unconfirmed.size
  }

  /** Another history (a new slot or cluster): its snapshots might never show the old xids. */
  reset(): void {
    this.#unconfirmed = new UnconfirmedCommits()
  }

  /**
   * The snapshot's visibility is known: the shape moves on and its held transactions are handed
   * back to be merged. Its open part, if any, stays counted until its commit hands it on.
   */
  start(shape: ActiveShape, visibility: Visibility): readonly HeldTransaction[] {
    this.#joinedAt.delete(shape)
    const held = shape.startSnapshot(visibility)
    this.unhold(shape, held.reduce((n, tx) => n + tx.changes.length, 0))
    return held
  }

  /**
   * Counts changes held for a shape awaiting its snapshot. Past the limit, the waiting shape
   * holding the most is dropped: its clients refetch, and memory stays bounded however long the
   * snapshot queue and however heavy the writes.
   */
  hold(shape: ActiveShape, changes: number): void {
    this.#heldChanges.set(shape, (this.#heldChanges.get(shape) ?? 0) + changes)
    this.#heldTotal += changes
    if (this.#heldTotal <= this.#options.maxHeldChanges) return
    let largest: ActiveShape | undefined
    let most = 0
    for (const [candidate, count] of this.#heldChanges) {
      // Only a shape still waiting can be dropped to make room; a started snapshot's open part ends at its commit.
      if (count > most && candidate.phase.kind === SHAPE_PHASE.waiting) [largest, most] = [candidate, count]
    }
    if (!largest) return
    this.release(largest)
    this.#options.log.warn(
      { handle: largest.stored.handle, heldChanges: most, limit: this.#options.maxHeldChanges },
      'dropping a shape whose snapshot waited for a slot while more changes arrived than SLUICE_MAX_HELD_CHANGES allows; ' +
        'its clients refetch. Raise SLUICE_MAX_CONCURRENT_SNAPSHOTS, or SLUICE_MAX_HELD_CHANGES if memory allows.',
    )
    this.#options.invalidate(largest, 'too many changes arrived while its snapshot waited for a slot')
  }

  /** Changes no longer held: handed on, or of a transaction that will be sent again. */
  unhold(shape: ActiveShape, changes: number): void {
    const count = this.#heldChanges.get(shape)
    if (count === undefined) return
    const left = Math.max(0, count - changes)
    this.#heldChanges.set(shape, left)
    this.#heldTotal -= count - left
  }

  /** Nothing of the shape is held any more. */
  release(shape: ActiveShape): void {
    const count = this.#heldChanges.get(shape)
    if (count === undefined) return
    this.#heldChanges.delete(shape)
    this.#heldTotal -= count
  }

  /** Row changes held now, over all shapes. */
  get heldChanges(): number {
    return this.#heldTotal
  }
}
