/**
 * A shape as the running server holds it: its stored record, the table it reads, and where it
 * stands in the snapshot/log merge (docs/ARCHITECTURE.md I2, I3).
 */
import { MustRefetchError, type InvalidRequestError } from '../errors.js'
import type { TableInfo } from '../pg/introspect.js'
import type { Transaction } from '../replication/transaction.js'
import type { StoredShape } from '../storage/shape-log-store.js'
import type { CompiledWhere } from './where/compile-where.js'
import type { Visibility } from './xid-visibility.js'

export const MERGE_PHASE = {
  /** Snapshot visibility not known yet: transactions are held back. */
  awaitingSnapshot: 'awaiting-snapshot',
  /** Transactions visible in the snapshot are skipped. */
  filtering: 'filtering',
  /** Past the snapshot's xmax: every transaction is appended. */
  appendAll: 'append-all',
} as const
export type MergePhase = (typeof MERGE_PHASE)[keyof typeof MERGE_PHASE]

export interface ActiveShape {
  readonly stored: StoredShape
  /** The shape's table narrowed to its selected columns (all of them without `columns`). */
  readonly table: TableInfo
  /** The compiled `where`; undefined for the whole table. */
  readonly where: CompiledWhere | undefined
  phase: MergePhase
  visibility: Visibility | undefined
  readonly held: HeldTransaction[]
  /** Set once the snapshot is complete in storage (at once for shapes loaded at start). */
  snapshotComplete: boolean
  /** Set once the shape is being dropped: it can no longer be served. */
  dropped: boolean
  /** Set when the shape was dropped because the request itself cannot be served (its snapshot failed for good). */
  failure?: InvalidRequestError
}

/** What a request waiting on a dropped shape gets: its 400 when the shape can never work, else a 409. */
export function droppedError(shape: ActiveShape): InvalidRequestError | MustRefetchError {
  return shape.failure ?? new MustRefetchError(undefined, 'shape was dropped')
}

/**
 * A transaction kept for a shape until its snapshot's visibility is known. For a shape added
 * while the transaction was being received, only its later changes: the snapshot shows that
 * transaction (`ShapeRouter.commitsMissedBy`), so they are skipped.
 */
export type HeldTransaction = Transaction
