/**
 * Reading shape logs (docs/ARCHITECTURE.md I4, I7): ordered range scans over memory-mapped pages
 * that never re-encode, the end of the next complete chunk, and what a start needs to find each
 * log's head and open chunk again. What readers may see is bounded by the heads they are given:
 * entries past a shape's head belong to a transaction that has not committed.
 */
import { compareOffsets, INF_OP, type Offset } from '../protocol/offset.js'
import type { LogDatabases } from './log-databases.js'
import { isSnapshotBlockKey, LOG_START, logKey, offsetAfter, offsetOfKey, shapeReverseRange, snapshotChunkKey } from './log-keys.js'
import { joinedRows, SnapshotBlock } from './snapshot-block.js'

type Entries = LogDatabases['entries']

/** What the read path needs to know of each shape besides LMDB's pages. */
export interface ShapePositions {
  /** The offset of the shape's last committed entry: readers see nothing past it. */
  head(shapeId: number): Offset | undefined
  /** The last chunk of a complete snapshot. */
  lastSnapshotChunk(shapeId: number): number | undefined
}

export class LogReads {
  readonly #entries: Entries
  readonly #boundaries: LogDatabases['boundaries']
  readonly #positions: ShapePositions

  constructor(entries: Entries, boundaries: LogDatabases['boundaries'], positions: ShapePositions) {
    this.#entries = entries
    this.#boundaries = boundaries
    this.#positions = positions
  }

  /**
   * Entries in `(after, upTo]`, one Buffer each, as stored. Snapshot offsets count chunks: the
   * range holds whole snapshot chunks, and a snapshot offset at or past the last chunk (or
   * `0_inf`) is the log's start.
   */
  read(shapeId: number, after: Offset, upTo: Offset): Buffer[] {
    const values: Buffer[] = []
    this.#scan(shapeId, after, upTo, (block) => {
      const rows = new SnapshotBlock(block)
      for (let i = 0; i < rows.count; i++) values.push(rows.row(i))
    }, (value) => values.push(value))
    return values
  }

  /**
   * Entries in `(after, upTo]` as parts that, joined with commas, are the entries joined with
   * commas: a snapshot block comes as one slice, with no copy per row.
   */
  readJoinable(shapeId: number, after: Offset, upTo: Offset): Buffer[] {
    const parts: Buffer[] = []
    this.#scan(shapeId, after, upTo, (block) => parts.push(joinedRows(block)), (value) => parts.push(value))
    return parts
  }

  #scan(shapeId: number, after: Offset, upTo: Offset, onBlock: (block: Buffer) => void, onEntry: (value: Buffer) => void): void {
    const range = { start: keyAfter(shapeId, after), end: keyAfter(shapeId, upTo) }
    for (const { key, value } of this.#entries.getRange(range)) {
      if (isSnapshotBlockKey(key)) onBlock(value)
      else onEntry(value)
    }
  }

  /**
   * The end of the complete chunk right after `after`, if there is one: the next snapshot
   * chunk, or the log's first boundary past `after` that readers may see (at or before the head).
   */
  chunkEndAfter(shapeId: number, after: Offset): Offset | undefined {
    const last = this.#positions.lastSnapshotChunk(shapeId)
    const inSnapshot = after.tx < 0n || (after.tx === 0n && after.op !== INF_OP && (last === undefined || after.op < last))
    if (inSnapshot) {
      const next = after.tx < 0n ? 0 : after.op + 1
      return this.#boundaries.doesExist(snapshotChunkKey(shapeId, next)) ? { tx: 0n, op: next } : undefined
    }
    const head = this.#positions.head(shapeId)
    if (!head || head.tx === 0n || compareOffsets(after, head) >= 0) return undefined
    const start = after.tx === 0n ? LOG_START : offsetAfter(after)
    for (const key of this.#boundaries.getKeys({ start: logKey(shapeId, start), end: logKey(shapeId, offsetAfter(head)), limit: 1 })) {
      return offsetOfKey(key)
    }
    return undefined
  }
}

/** The first key past everything at or before `offset`. */
function keyAfter(shapeId: number, offset: Offset): Buffer {
  if (offset.tx < 0n) return snapshotChunkKey(shapeId, 0)
  if (offset.tx === 0n) return offset.op === INF_OP ? logKey(shapeId, LOG_START) : snapshotChunkKey(shapeId, offset.op + 1)
  return logKey(shapeId, offsetAfter(offset))
}

/** The offset of the shape's last stored log entry, if any. */
export function lastLogOffset(entries: Entries, shapeId: number): Offset | undefined {
  for (const key of entries.getKeys({ ...shapeReverseRange(shapeId), reverse: true, limit: 1 })) return logOffsetOf(key)
  return undefined
}

/** The log offset of a shape's last key in `entries` or `boundaries`; undefined for a snapshot's key. */
export function logOffsetOf(lastKey: Buffer | undefined): Offset | undefined {
  if (!lastKey) return undefined
  const offset = offsetOfKey(lastKey)
  return !isSnapshotBlockKey(lastKey) && offset.tx > 0n ? offset : undefined
}

/**
 * Each shape's last key in `db`, in one pass over its keys: at a start with many shapes and short
 * logs this reads far less than a cursor per shape (`log-recovery.ts`).
 */
export function lastKeyOfEachShape(db: Entries | LogDatabases['boundaries']): Map<number, Buffer> {
  const last = new Map<number, Buffer>()
  for (const key of db.getKeys()) last.set(key.readUInt32BE(0), key)
  return last
}

/** Log bytes after the shape's last log boundary, up to `head`, each with its comma. */
export function bytesSinceLastLogBoundary(dbs: LogDatabases, shapeId: number, head: Offset | undefined): number {
  if (!head || head.tx === 0n) return 0
  return logBytesAfter(dbs, shapeId, lastLogBoundary(dbs, shapeId, head), head)
}

/** Log bytes in `(boundary, head]` (from the log's start when it has no boundary), each with its comma. */
export function logBytesAfter(dbs: LogDatabases, shapeId: number, boundary: Offset | undefined, head: Offset): number {
  const start = boundary ? offsetAfter(boundary) : LOG_START
  if (compareOffsets(start, head) > 0) return 0
  let bytes = 0
  for (const { value } of dbs.entries.getRange({ start: logKey(shapeId, start), end: logKey(shapeId, offsetAfter(head)) })) bytes += value.length + 1
  return bytes
}

/** The shape's last log boundary at or before `head`. */
function lastLogBoundary(dbs: LogDatabases, shapeId: number, head: Offset): Offset | undefined {
  // Reverse ranges include `start` and exclude `end`: from the head down to the log's first key.
  const beforeLog = logKey(shapeId, { tx: 0n, op: INF_OP })
  for (const key of dbs.boundaries.getKeys({ start: logKey(shapeId, head), end: beforeLog, reverse: true, limit: 1 })) return offsetOfKey(key)
  return undefined
}
