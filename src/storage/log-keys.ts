/**
 * Binary keys for shape logs, big-endian so LMDB's byte order is the log's offset order and one
 * shape's log is one contiguous key range:
 * - a log entry (and a log chunk boundary): `shapeId (u32) | tx (u64, ≥ 1) | op (u32)`;
 * - a snapshot chunk (its boundary, and the prefix of its blocks): `shapeId | 0 (u64) | chunk (u32)`;
 * - a snapshot block: the chunk's key `| block (u32)`, 20 bytes. A shorter key sorts before every
 *   longer one it prefixes, so chunk `n`'s blocks lie between the keys of chunks `n` and `n + 1`,
 *   and the whole snapshot before the log.
 */
import { INF_OP, type Offset } from '../protocol/offset.js'

export const KEY_BYTES = 16
const BLOCK_KEY_BYTES = 20

/** The first offset a replicated change can have: commit LSNs are never 0. */
export const LOG_START: Offset = { tx: 1n, op: 0 }

export function logKey(shapeId: number, offset: Offset): Buffer {
  const key = Buffer.allocUnsafe(KEY_BYTES)
  key.writeUInt32BE(shapeId, 0)
  key.writeBigUInt64BE(offset.tx < 0n ? 0n : offset.tx, 4)
  key.writeUInt32BE(offset.tx < 0n ? 0 : offset.op, 12)
  return key
}

/** Snapshot chunk `chunk`: its boundary, and the key just before its first block. */
export function snapshotChunkKey(shapeId: number, chunk: number): Buffer {
  return logKey(shapeId, { tx: 0n, op: chunk })
}

export function snapshotBlockKey(shapeId: number, chunk: number, block: number): Buffer {
  const key = Buffer.allocUnsafe(BLOCK_KEY_BYTES)
  key.writeUInt32BE(shapeId, 0)
  key.writeBigUInt64BE(0n, 4)
  key.writeUInt32BE(chunk, 12)
  key.writeUInt32BE(block, 16)
  return key
}

export function isSnapshotBlockKey(key: Buffer): boolean {
  return key.length === BLOCK_KEY_BYTES
}

export function offsetOfKey(key: Buffer): Offset {
  return { tx: key.readBigUInt64BE(4), op: key.readUInt32BE(12) }
}

/** The smallest offset strictly after `offset` (`-1` → `0_0`, `0_inf` → the log's start). */
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
  const start = Buffer.alloc(BLOCK_KEY_BYTES, 0xff)
  start.writeUInt32BE(shapeId, 0)
  const end = Buffer.alloc(BLOCK_KEY_BYTES, 0xff)
  end.writeUInt32BE(shapeId - 1, 0)
  return { start, end }
}
