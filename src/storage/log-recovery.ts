/**
 * Opening storage after a stop or a crash (docs/ARCHITECTURE.md I5, I7): shapes stored in an
 * older layout go (they are built again on request), entries of a transaction whose commit never
 * made it go (the slot replays it into the same offsets), and each remaining log's head and open
 * chunk are found again from what is stored. With 100,000 shapes this is on the restart's path,
 * so each record is decoded once and each log is looked at with one cursor when it holds nothing
 * uncommitted, as nearly all do.
 */
import type { Lsn } from '../pg/lsn.js'
import type { Offset } from '../protocol/offset.js'
import { FORMAT, META, type LogDatabases } from './log-databases.js'
import { bytesSinceLastLogBoundary, lastLogOffset } from './log-reads.js'
import { removeLogFrom, removeShape } from './log-writes.js'
import type { StoredShape } from './stored-shape.js'

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
  /** The stored records, as read while recovering (reading 100,000 again costs a second). */
  readonly records: readonly StoredShape[]
  readonly shapes: readonly RecoveredShape[]
}

export function recoverLogs(dbs: LogDatabases): RecoveredLogs {
  const committedLsn = BigInt(dbs.meta.get(META.durableLsn) ?? '0') as Lsn
  let records = [...dbs.shapes.getRange()].map(({ value }) => value)
  const shapesOfOldFormat = dbs.meta.get(META.format) === FORMAT ? [] : records
  if (dbs.meta.get(META.format) !== FORMAT) {
    dbs.root.transactionSync(() => {
      for (const shape of shapesOfOldFormat) removeShape(dbs, shape.id)
      dbs.meta.putSync(META.format, FORMAT)
    })
    records = []
  }
  // Entries and boundaries of a transaction whose commit never made it (a large one is written
  // as it arrives) go: it is replayed from the slot. Every committed entry's LSN is below the LSN
  // stored with it, which is the commit's end; a later transaction starts at or after it. A log
  // boundary is only ever at an entry's key, so a log whose last entry is committed has none past it.
  const uncommittedFrom = committedLsn > 0n ? committedLsn : 1n
  const lastEntries = records.map((shape) => lastLogOffset(dbs.entries, shape.id))
  const uncommitted = new Set(records.filter((_, i) => (lastEntries[i]?.tx ?? 0n) >= uncommittedFrom).map((shape) => shape.id))
  if (uncommitted.size > 0) {
    dbs.root.transactionSync(() => {
      for (const id of uncommitted) removeLogFrom(dbs, id, { tx: uncommittedFrom, op: 0 })
    })
  }
  const shapes = records.map((shape, i) => {
    const last = shape.lastSnapshotChunk
    const lastEntry = uncommitted.has(shape.id) ? lastLogOffset(dbs.entries, shape.id) : lastEntries[i]
    const head = lastEntry ?? (last === undefined ? undefined : { tx: 0n, op: last })
    return { id: shape.id, lastSnapshotChunk: last, head, chunkBytes: bytesSinceLastLogBoundary(dbs, shape.id, head) }
  })
  return { committedLsn, droppedOldFormatShapes: shapesOfOldFormat.length, records, shapes }
}
