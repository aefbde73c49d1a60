/**
 * Opening storage after a stop or a crash (docs/ARCHITECTURE.md I5, I7): shapes stored in an
 * older layout go (they are built again on request), entries of a transaction whose commit never
 * made it go (the slot replays it into the same offsets), and each remaining log's head and open
 * chunk are found again from what is stored. With 100,000 shapes this is on the restart's path
 * (docs/ARCHITECTURE.md I31), so each record is decoded once, and while logs are short each log's
 * last entry and boundary come from one pass over all keys rather than cursors per shape.
 */
import type { Lsn } from '../pg/lsn.js'
import type { Offset } from '../protocol/offset.js'
import { FORMAT, META, type LogDatabases } from './log-databases.js'
import { bytesSinceLastLogBoundary, lastKeyOfEachShape, lastLogOffset, logBytesAfter, logOffsetOf } from './log-reads.js'
import { removeLogFrom, removeShape } from './log-writes.js'
import { unnamedDescriptions, type StoredRecord } from './shape-records.js'

/**
 * Up to this many stored entries per shape, one pass over every key of the entries and the
 * boundaries reads less than cursors per shape (100,000 shapes: a pass costs about 1.5 µs a key, a
 * cursor 10-30 µs); past it, each log is looked at on its own. A log whose last entry is committed
 * has no boundary past it (a boundary is only at an entry's key), so its last boundary is its open chunk's start.
 */
const KEYS_PER_SHAPE_FOR_ONE_PASS = 16

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
  readonly records: readonly StoredRecord[]
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
  // Descriptions of tables whose shapes are all gone: kept while running (written once each), removed here.
  const unnamed = unnamedDescriptions(dbs, records)
  if (unnamed.length > 0) {
    dbs.root.transactionSync(() => {
      for (const key of unnamed) dbs.tables.removeSync(key)
    })
  }
  // Entries and boundaries of a transaction whose commit never made it (a large one is written
  // as it arrives) go: it is replayed from the slot. Every committed entry's LSN is below the LSN
  // stored with it, which is the commit's end; a later transaction starts at or after it. A log
  // boundary is only ever at an entry's key, so a log whose last entry is committed has none past it.
  const uncommittedFrom = committedLsn > 0n ? committedLsn : 1n
  const stored = logEnds(dbs, records.length)
  const uncommitted = new Set(records.filter((shape) => (stored.lastEntry(shape.id)?.tx ?? 0n) >= uncommittedFrom).map((shape) => shape.id))
  if (uncommitted.size > 0) {
    dbs.root.transactionSync(() => {
      for (const id of uncommitted) removeLogFrom(dbs, id, { tx: uncommittedFrom, op: 0 })
    })
  }
  const removed = eachLogEnd(dbs)
  const shapes = records.map((shape) => {
    const ends = uncommitted.has(shape.id) ? removed : stored
    const last = shape.lastSnapshotChunk
    const head = ends.lastEntry(shape.id) ?? (last === undefined ? undefined : { tx: 0n, op: last })
    return { id: shape.id, lastSnapshotChunk: last, head, chunkBytes: head && head.tx > 0n ? ends.chunkBytes(shape.id, head) : 0 }
  })
  return { committedLsn, droppedOldFormatShapes: shapesOfOldFormat.length, records, shapes }
}

/** Where each stored log ends. */
interface LogEnds {
  lastEntry(shapeId: number): Offset | undefined
  /** The open chunk's bytes: the log's bytes after its last boundary, up to `head`, its last entry. */
  chunkBytes(shapeId: number, head: Offset): number
}

function logEnds(dbs: LogDatabases, shapes: number): LogEnds {
  const { entryCount } = dbs.entries.getStats() as { entryCount: number }
  if (entryCount > KEYS_PER_SHAPE_FOR_ONE_PASS * shapes) return eachLogEnd(dbs)
  const entries = lastKeyOfEachShape(dbs.entries)
  const boundaries = lastKeyOfEachShape(dbs.boundaries)
  return {
    lastEntry: (shapeId) => logOffsetOf(entries.get(shapeId)),
    chunkBytes: (shapeId, head) => logBytesAfter(dbs, shapeId, logOffsetOf(boundaries.get(shapeId)), head),
  }
}

/** Cursors per shape. */
function eachLogEnd(dbs: LogDatabases): LogEnds {
  return {
    lastEntry: (shapeId) => lastLogOffset(dbs.entries, shapeId),
    chunkBytes: (shapeId, head) => bytesSinceLastLogBoundary(dbs, shapeId, head),
  }
}
