/**
 * Binary keys for shape logs: `shapeId (u32) | tx (u64) | op (u32)`, big-endian, so LMDB's
 * byte order is the log's offset order and one shape's log is one contiguous key range.
 */
import { INF_OP, type Offset } from '../protocol/offset.js'

export const KEY_BYTES = 16

export function logKey(shapeId: number, offset: Offset): Buffer {
  const key = Buffer.allocUnsafe(KEY_BYTES)
  key.writeUInt32BE(shapeId, 0)
  key.writeBigUInt64BE(offset.tx < 0n ? 0n : offset.tx, 4)
  key.writeUInt32BE(offset.tx < 0n ? 0 : offset.op, 12)
  return key
}

export function offsetOfKey(key: Buffer): Offset {
  return { tx: key.readBigUInt64BE(4), op: key.readUInt32BE(12) }
}

/** For a key of a snapshot row (`0_<n>`, not `0_inf`), `n`; otherwise undefined. Avoids a BigInt per key. */
export function snapshotRowOfKey(key: Buffer): number | undefined {
  if (key.readUInt32BE(4) !== 0 || key.readUInt32BE(8) !== 0) return undefined
  const op = key.readUInt32BE(12)
  return op === INF_OP ? undefined : op
}

/** The smallest offset strictly after `offset` (`-1` → `0_0`). */
export function offsetAfter(offset: Offset): Offset {
  if (offset.tx < 0n) return { tx: 0n, op: 0 }
  if (offset.op >= INF_OP) return { tx: offset.tx + 1n, op: 0 }
  return { tx: offset.tx, op: offset.op + 1 }
}

/** First key of the shape's range and first key past it. */
export function shapeKeyRange(shapeId: number): { start: Buffer; end: Buffer } {
  const start = Buffer.alloc(KEY_BYTES)
  start.writeUInt32BE(shapeId, 0)
  const end = Buffer.alloc(KEY_BYTES)
  end.writeUInt32BE(shapeId + 1, 0)
  return { start, end }
}

/**
 * The shape's range for reverse scans: lmdb-js includes `start` and excludes `end` there, so
 * it runs from the shape's highest possible key down to just past its lowest.
 */
export function shapeReverseRange(shapeId: number): { start: Buffer; end: Buffer } {
  const start = Buffer.alloc(KEY_BYTES, 0xff)
  start.writeUInt32BE(shapeId, 0)
  const end = Buffer.alloc(KEY_BYTES, 0xff)
  end.writeUInt32BE(shapeId - 1, 0)
  return { start, end }
}
