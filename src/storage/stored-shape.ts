/**
 * What storage keeps about a shape and what it is given to write (docs/ARCHITECTURE.md: Data
 * flow): the shape's record, its snapshot's visibility, and a replication batch's appends.
 */
import type { TableInfo } from '../pg/introspect.js'
import type { Lsn } from '../pg/lsn.js'
import type { ShapeDefinition } from '../shapes/shape-definition.js'
import type { ShapeHandle } from '../shapes/shape-handle.js'

export const SHAPE_STATUS = { snapshotting: 'snapshotting', ready: 'ready' } as const
export type ShapeStatus = (typeof SHAPE_STATUS)[keyof typeof SHAPE_STATUS]

/** `pg_current_snapshot()` of a shape's snapshot, 64-bit xids as decimal text. */
export interface SnapshotInfo {
  readonly xmin: string
  readonly xmax: string
  readonly xip: readonly string[]
  /** `pg_current_wal_insert_lsn()` read after it, decimal; absent in shapes stored before it was kept. */
  readonly lsn?: string
}

export interface StoredShape {
  readonly id: number
  readonly handle: ShapeHandle
  readonly definition: ShapeDefinition
  readonly definitionKey: string
  readonly status: ShapeStatus
  readonly snapshot?: SnapshotInfo
  /** The snapshot's last chunk, once it is complete: its end `0_<n>` is where the log begins. */
  readonly lastSnapshotChunk?: number
  readonly createdAtMs: number
  /** The row identity's columns the log's keys are made of (absent in shapes stored before it was kept). */
  readonly key?: readonly string[]
  /**
   * The table as the shape was bound to it (its selected columns), so a start can tell whether
   * it changed while Sluice was down. Absent in shapes stored before it was kept.
   */
  readonly table?: TableInfo
}

/**
 * One transaction's entries for one shape: wire JSON at offsets `<tx>_<firstOp>`,
 * `<tx>_<firstOp + 1>`, … (a shape's ops in a transaction are consecutive).
 */
export interface ShapeAppend {
  readonly shapeId: number
  readonly tx: Lsn
  readonly firstOp: number
  readonly entries: readonly string[]
}

export interface LogBatch {
  /** Everything up to this LSN is processed once the batch is durable. */
  readonly durableLsn: Lsn
  readonly appends: readonly ShapeAppend[]
}
