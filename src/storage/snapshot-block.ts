/**
 * Snapshot rows are stored in blocks of consecutive rows, one LMDB value per block, instead of
 * one value per row: a 1,000,000-row snapshot is then a few thousand writes and reads, not a
 * million of each. A block is `u32 count | u32 length × count | rows joined by ","`, so the
 * rows of a whole block are one slice that drops straight into a JSON array body, and any one
 * row is a slice too. A snapshot chunk is a run of blocks (`log-keys.ts`).
 */

/** A block closes once it holds this many bytes (or at a chunk boundary, or a batch's end). */
export const BLOCK_BYTES = 64 * 1024

const COMMA = 0x2c

export function encodeBlock(rows: readonly Buffer[]): Buffer {
  const header = 4 + 4 * rows.length
  let size = header + Math.max(0, rows.length - 1)
  for (const row of rows) size += row.length
  const block = Buffer.allocUnsafe(size)
  block.writeUInt32BE(rows.length, 0)
  let at = header
  for (let i = 0; i < rows.length; i++) {
    const row = rows[i]!
    block.writeUInt32BE(row.length, 4 + 4 * i)
    if (i > 0) block[at++] = COMMA
    at += row.copy(block, at)
  }
  return block
}

/** Every row of a block as one comma-joined slice, without reading the row lengths. */
export function joinedRows(block: Buffer): Buffer {
  return block.subarray(4 + 4 * block.readUInt32BE(0))
}

export class SnapshotBlock {
  readonly count: number
  readonly #block: Buffer
  /** Byte position of each row in `#block`, and one past the last row's end. */
  readonly #starts: number[]

  constructor(block: Buffer) {
    this.#block = block
    this.count = block.readUInt32BE(0)
    this.#starts = new Array<number>(this.count + 1)
    let at = 4 + 4 * this.count
    for (let i = 0; i < this.count; i++) {
      this.#starts[i] = at
      at += block.readUInt32BE(4 + 4 * i) + 1
    }
    this.#starts[this.count] = at
  }

  row(i: number): Buffer {
    return this.#block.subarray(this.#starts[i]!, this.#starts[i + 1]! - 1)
  }
}
