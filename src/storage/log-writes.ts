/**
 * Writing shape logs, inside an LMDB write transaction the store has opened (docs/ARCHITECTURE.md
 * I6, I7): snapshot rows in blocks, log entries with the chunk boundaries they close, and removal.
 * Where a boundary falls depends only on the entries written, so a replay writes the same chunks.
 */
import type { TableInfo } from '../pg/introspect.js'
import type { Offset } from '../protocol/offset.js'
import type { ShapeDefinition } from '../shapes/shape-definition.js'
import { makeShapeHandle } from '../shapes/shape-handle.js'
import { MARK, META, type LogDatabases } from './log-databases.js'
import { KEY_BYTES, logKey, shapeKeyRange, snapshotBlockKey, snapshotChunkKey } from './log-keys.js'
import { BLOCK_BYTES, encodeBlock } from './snapshot-block.js'
import type { ShapeRecords, StoredRecord } from './shape-records.js'
import { SHAPE_STATUS, type ShapeAppend, type StoredShape } from './stored-shape.js'

/** A snapshot being written: its open chunk, that chunk's next block and its bytes so far. */
export interface SnapshotProgress {
  readonly chunk: number
  readonly block: number
  readonly bytes: number
}

/** A snapshot being written, and its shape's record as stored (only the snapshot's end changes it). */
export interface SnapshotWrite extends SnapshotProgress {
  readonly record: StoredRecord
}

/**
 * Registers a new shape, snapshotting, under the next id and a handle never issued before (I8);
 * returns it and its record as stored.
 */
export function putNewShape(
  dbs: LogDatabases,
  records: ShapeRecords,
  definition: ShapeDefinition,
  definitionKey: string,
  key: readonly string[] | undefined,
  table: TableInfo | undefined,
): { readonly shape: StoredShape; readonly record: StoredRecord } {
  const id = Number(dbs.meta.get(META.nextShapeId) ?? '1')
  // Microseconds, but strictly increasing even when the clock steps back or two shapes are
  // created in the same microsecond: handles are never reused.
  const lastClock = BigInt(dbs.meta.get(META.handleClock) ?? '0')
  const now = BigInt(Date.now()) * 1000n
  const clock = now > lastClock ? now : lastClock + 1n
  const shape: StoredShape = {
    id,
    handle: makeShapeHandle(definitionKey, clock),
    definition,
    definitionKey,
    status: SHAPE_STATUS.snapshotting,
    createdAtMs: Date.now(),
    ...(key ? { key } : {}),
    ...(table ? { table } : {}),
  }
  dbs.meta.putSync(META.nextShapeId, String(id + 1))
  dbs.meta.putSync(META.handleClock, String(clock))
  return { shape, record: records.put(shape) }
}

/**
 * Appends snapshot rows to the open snapshot chunk, closing it after the row that takes it past
 * `chunkBytes`. Rows are stored in blocks (`snapshot-block.ts`) that end at chunk boundaries and
 * at the end of each call, so a block is never extended and never spans chunks.
 */
export function putSnapshotRows<P extends SnapshotProgress>(dbs: LogDatabases, shapeId: number, progress: P, rows: readonly Buffer[], chunkBytes: number): P {
  let { chunk, block, bytes } = progress
  let pending: Buffer[] = []
  let pendingBytes = 0
  const closeBlock = () => {
    if (pending.length === 0) return
    dbs.entries.putSync(snapshotBlockKey(shapeId, chunk, block++), encodeBlock(pending))
    pending = []
    pendingBytes = 0
  }
  for (const row of rows) {
    pending.push(row)
    pendingBytes += row.length + 1
    bytes += row.length + 1
    if (bytes >= chunkBytes) {
      closeBlock()
      dbs.boundaries.putSync(snapshotChunkKey(shapeId, chunk), MARK)
      chunk++
      block = 0
      bytes = 0
    } else if (pendingBytes >= BLOCK_BYTES) {
      closeBlock()
    }
  }
  closeBlock()
  return { ...progress, chunk, block, bytes }
}

/** Ends the snapshot with its control message, the last entry of its last chunk; returns that chunk. */
export function putSnapshotEnd(dbs: LogDatabases, shapeId: number, progress: SnapshotProgress, endMessage: Buffer): number {
  dbs.entries.putSync(snapshotBlockKey(shapeId, progress.chunk, progress.block), encodeBlock([endMessage]))
  dbs.boundaries.putSync(snapshotChunkKey(shapeId, progress.chunk), MARK)
  return progress.chunk
}

/**
 * Puts log entries. LMDB copies key and value during the put, so one key and one value buffer
 * serve every entry: nothing is allocated per entry.
 */
export class EntryWriter {
  readonly #dbs: LogDatabases
  readonly #chunkBytes: number
  /** Its own memory, not a slice of Node's shared pool. */
  readonly #key = Buffer.allocUnsafeSlow(KEY_BYTES)
  readonly #value = Buffer.allocUnsafeSlow(64 * 1024)

  constructor(dbs: LogDatabases, chunkBytes: number) {
    this.#dbs = dbs
    this.#chunkBytes = chunkBytes
  }

  /**
   * Puts an append's entries, and a chunk boundary after each entry that takes the shape's open
   * log chunk past the limit; every entry counts with the comma that joins it to the next.
   * `bytes` is the open chunk's size before; returns it after.
   */
  put(append: ShapeAppend, bytes: number): number {
    const key = this.#key
    key.writeUInt32BE(append.shapeId, 0)
    key.writeBigUInt64BE(append.tx, 4)
    for (let i = 0; i < append.entries.length; i++) {
      const json = append.entries[i]!
      // UTF-8 takes at most three bytes per UTF-16 code unit; a larger entry gets its own buffer
      // rather than growing the scratch one for good.
      const value = json.length * 3 <= this.#value.length ? this.#value.subarray(0, this.#value.write(json, 0, 'utf8')) : Buffer.from(json)
      key.writeUInt32BE(append.firstOp + i, 12)
      this.#dbs.entries.putSync(key, value)
      bytes += value.length + 1
      if (bytes >= this.#chunkBytes) {
        this.#dbs.boundaries.putSync(key, MARK)
        bytes = 0
      }
    }
    return bytes
  }
}

/** Removes the shape's log entries and boundaries from `from` on. */
export function removeLogFrom(dbs: LogDatabases, shapeId: number, from: Offset): void {
  const range = { start: logKey(shapeId, from), end: shapeKeyRange(shapeId).end }
  for (const key of dbs.entries.getKeys(range)) dbs.entries.removeSync(key)
  for (const key of dbs.boundaries.getKeys(range)) dbs.boundaries.removeSync(key)
}

/** Removes the shape's record, its snapshot and its whole log. */
export function removeShape(dbs: LogDatabases, shapeId: number): void {
  const range = shapeKeyRange(shapeId)
  for (const key of dbs.entries.getKeys(range)) dbs.entries.removeSync(key)
  for (const key of dbs.boundaries.getKeys(range)) dbs.boundaries.removeSync(key)
  dbs.shapes.removeSync(shapeId)
}
