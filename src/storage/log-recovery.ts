/**
 * Opening storage after a stop or a crash (docs/ARCHITECTURE.md I5, I7): shapes stored in an
 * older layout go (they are built again on request), entries of a transaction whose commit never
 * made it go (the slot replays it into the same offsets), and each remaining log's head and open
 * chunk are found again from what is stored.
 */
import type { Lsn } from '../pg/lsn.js'
import type { Offset } from '../protocol/offset.js'
import { FORMAT, META, type LogDatabases } from './log-databases.js'
import { bytesSinceLastLogBoundary, lastLogOffset } from './log-reads.js'
import { removeLogFrom, removeShape } from './log-writes.js'

export interface RecoveredShape {
  readonly id: number
  readonly lastSnapshotChunk: number | undefined
  /** The last log entry, else the complete snapshot's end `0_<n>`, else undefined. */
  readonly head: Offset | undefined
  /** Log bytes since the last log boundary: the open chunk's size. */
  readonly chunkBytes: number
}

export interface RecoveredLogs {
  /** Every transaction whose commit ends at or before it is stored (and maybe not yet flushed). */
  readonly committedLsn: Lsn
  readonly droppedOldFormatShapes: number
  readonly shapes: readonly RecoveredShape[]
}

export function recoverLogs(dbs: LogDatabases): RecoveredLogs {
  const committedLsn = BigInt(dbs.meta.get(META.durableLsn) ?? '0') as Lsn
  const stored = () => [...dbs.shapes.getRange()].map(({ value }) => value)
  const shapesOfOldFormat = dbs.meta.get(META.format) === FORMAT ? [] : stored()
  dbs.root.transactionSync(() => {
    for (const shape of shapesOfOldFormat) removeShape(dbs, shape.id)
    dbs.meta.putSync(META.format, FORMAT)
  })
  // Entries and boundaries of a transaction whose commit never made it (a large one is written
  // as it arrives) go: it is replayed from the slot. Every committed entry's LSN is below the LSN
  // stored with it, which is the commit's end; a later transaction starts at or after it.
  const uncommittedFrom = committedLsn > 0n ? committedLsn : 1n
  dbs.root.transactionSync(() => {
    for (const shape of stored()) removeLogFrom(dbs, shape.id, { tx: uncommittedFrom, op: 0 })
  })
  const shapes = stored().map((shape) => {
    const last = shape.lastSnapshotChunk
    const head = lastLogOffset(dbs.entries, shape.id) ?? (last === undefined ? undefined : { tx: 0n, op: last })
    return { id: shape.id, lastSnapshotChunk: last, head, chunkBytes: bytesSinceLastLogBoundary(dbs, shape.id, head) }
  })
  return { committedLsn, droppedOldFormatShapes: shapesOfOldFormat.length, shapes }
}
