/**
 * Reads `COPY … TO STDOUT (FORMAT binary)` output of a one-column query as raw values.
 * Binary COPY is used for snapshots because it is PostgreSQL's fastest way out and, unlike
 * text COPY, needs no unescaping: each value arrives as the exact bytes of the JSON text.
 */
const SIGNATURE = Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1')

export class CopyBinaryRowReader {
  #buffer: Buffer = Buffer.alloc(0)
  #headerDone = false
  #ended = false

  /** Feeds a chunk and returns the complete values it finished. */
  push(chunk: Buffer): Buffer[] {
    this.#buffer = this.#buffer.length === 0 ? chunk : Buffer.concat([this.#buffer, chunk])
    const rows: Buffer[] = []
    let pos = 0
    const buf = this.#buffer
    if (!this.#headerDone) {
      if (buf.length < 19) return rows
      if (!buf.subarray(0, 11).equals(SIGNATURE)) throw new Error('COPY binary: bad signature')
      const extension = buf.readUInt32BE(15)
      if (buf.length < 19 + extension) return rows
      pos = 19 + extension
      this.#headerDone = true
    }
    while (!this.#ended && buf.length - pos >= 2) {
      const fields = buf.readInt16BE(pos)
      if (fields === -1) {
        this.#ended = true
        pos += 2
        break
      }
      if (fields !== 1) throw new Error(`COPY binary: expected 1 field, got ${fields}`)
      if (buf.length - pos < 6) break
      const length = buf.readInt32BE(pos + 2)
      if (length < 0) throw new Error('COPY binary: unexpected NULL row')
      if (buf.length - pos < 6 + length) break
      rows.push(buf.subarray(pos + 6, pos + 6 + length))
      pos += 6 + length
    }
    this.#buffer = buf.subarray(pos)
    return rows
  }

  get ended(): boolean {
    return this.#ended
  }
}
