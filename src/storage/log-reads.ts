/**
 * Reading shape logs (docs/ARCHITECTURE.md I4, I7): ordered range scans over memory-mapped pages
 * that never re-encode, the end of the next complete chunk, and what a start needs to find each
 * log's head and open chunk again. Pure reads: the store passes the heads readers may see.
 */
import { compareOffsets, INF_OP, type Offset } from '../protocol/offset.js'
import type { LogDatabases } from './log-databases.js'
import { isSnapshotBlockKey, LOG_START, logKey, offsetAfter, offsetOfKey, shapeReverseRange, snapshotChunkKey } from './log-keys.js'
import { joinedRows, SnapshotBlock } from './snapshot-block.js'

type Entries = LogDatabases['entries']

/**
 * Entries in `(after, upTo]`, one Buffer each, as stored. Snapshot offsets count chunks: the
 * range holds whole snapshot chunks, and a snapshot offset at or past the last chunk (or `0_inf`)
 * is the log's start.
 */
export function readEntries(entries: Entries, shapeId: number, after: Offset, upTo: Offset): Buffer[] {
  const values: Buffer[] = []
  scan(entries, shapeId, after, upTo, (block) => {
    const rows = new SnapshotBlock(block)
    for (let i = 0; i < rows.count; i++) values.push(rows.row(i))
  }, (value) => values.push(value))
  return values
}

/**
 * Entries in `(after, upTo]` as parts that, joined with commas, are the entries joined with
 * commas: a snapshot block comes as one slice, with no copy per row.
 */
export function readJoinable(entries: Entries, shapeId: number, after: Offset, upTo: Offset): Buffer[] {
  const parts: Buffer[] = []
  scan(entries, shapeId, after, upTo, (block) => parts.push(joinedRows(block)), (value) => parts.push(value))
  return parts
}

function scan(entries: Entries, shapeId: number, after: Offset, upTo: Offset, onBlock: (block: Buffer) => void, onEntry: (value: Buffer) => void): void {
  const range = { start: keyAfter(shapeId, after), end: keyAfter(shapeId, upTo) }
  for (const { key, value } of entries.getRange(range)) {
    if (isSnapshotBlockKey(key)) onBlock(value)
    else onEntry(value)
  }
}

/** The first key past everything at or before `offset`. */
function keyAfter(shapeId: number, offset: Offset): Buffer {
  if (offset.tx < 0n) return snapshotChunkKey(shapeId, 0)
  if (offset.tx === 0n) return offset.op === INF_OP ? logKey(shapeId, LOG_START) : snapshotChunkKey(shapeId, offset.op + 1)
  return logKey(shapeId, offsetAfter(offset))
}

/**
 * The end of the complete chunk right after `after`, if there is one: the next snapshot chunk,
 * or the log's first boundary past `after` that readers may see (at or before `head`).
 */
export function chunkEndAfter(
  boundaries: LogDatabases['boundaries'],
  shapeId: number,
  after: Offset,
  shape: { readonly head: Offset | undefined; readonly lastSnapshotChunk: number | undefined },
): Offset | undefined {
  const last = shape.lastSnapshotChunk
  const inSnapshot = after.tx < 0n || (after.tx === 0n && after.op !== INF_OP && (last === undefined || after.op < last))
  if (inSnapshot) {
    const next = after.tx < 0n ? 0 : after.op + 1
    return boundaries.doesExist(snapshotChunkKey(shapeId, next)) ? { tx: 0n, op: next } : undefined
  }
  const head = shape.head
  if (!head || head.tx === 0n || compareOffsets(after, head) >= 0) return undefined
  const start = after.tx === 0n ? LOG_START : offsetAfter(after)
  for (const key of boundaries.getKeys({ start: logKey(shapeId, start), end: logKey(shapeId, offsetAfter(head)), limit: 1 })) {
    return offsetOfKey(key)
  }
  return undefined
}

/** The offset of the shape's last stored log entry, if any. */
export function lastLogOffset(entries: Entries, shapeId: number): Offset | undefined {
  for (const key of entries.getKeys({ ...shapeReverseRange(shapeId), reverse: true, limit: 1 })) {
    const offset = offsetOfKey(key)
    return !isSnapshotBlockKey(key) && offset.tx > 0n ? offset : undefined
  }
  return undefined
}

/** Log bytes after the shape's last log boundary, up to `head`, each with its comma. */
export function bytesSinceLastLogBoundary(dbs: LogDatabases, shapeId: number, head: Offset | undefined): number {
  if (!head || head.tx === 0n) return 0
  let start = LOG_START
  const upTo = logKey(shapeId, offsetAfter(head))
  // Reverse ranges include `start` and exclude `end`: from the head down to the log's first key.
  const beforeLog = logKey(shapeId, { tx: 0n, op: INF_OP })
  for (const key of dbs.boundaries.getKeys({ start: logKey(shapeId, head), end: beforeLog, reverse: true, limit: 1 })) {
    start = offsetAfter(offsetOfKey(key))
  }
  let bytes = 0
  for (const { value } of dbs.entries.getRange({ start: logKey(shapeId, start), end: upTo })) bytes += value.length + 1
  return bytes
}
