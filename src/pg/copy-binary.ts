/**
 * Reads `COPY … TO STDOUT (FORMAT binary)` output as raw values, `fields` per row (one by default).
 * Binary COPY is used for snapshots because it is PostgreSQL's fastest way out and, unlike
 * text COPY, needs no unescaping: each value arrives as the exact bytes of the JSON text.
 * Rows of several fields come out flat, field after field, so no array is made per row.
 */
const SIGNATURE = Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1')

export class CopyBinaryRowReader {
  readonly #fields: number
  #buffer: Buffer = Buffer.alloc(0)
  #headerDone = false
  #ended = false

  constructor(fields = 1) {
    this.#fields = fields
  }

  /** Feeds a chunk and returns the values of the complete rows it finished, `fields` per row. */
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
      if (fields !== this.#fields) throw new Error(`COPY binary: expected ${this.#fields} field${this.#fields === 1 ? '' : 's'}, got ${fields}`)
      const end = rowEnd(buf, pos + 2, fields)
      if (end < 0) break
      for (let at = pos + 2, i = 0; i < fields; i++) {
        const length = buf.readInt32BE(at)
        rows.push(buf.subarray(at + 4, at + 4 + length))
        at += 4 + length
      }
      pos = end
    }
    this.#buffer = buf.subarray(pos)
    return rows
  }

  get ended(): boolean {
    return this.#ended
  }
}

/** Where the row whose fields start at `at` ends, or -1 while it is incomplete. */
function rowEnd(buf: Buffer, at: number, fields: number): number {
  for (let i = 0; i < fields; i++) {
    if (buf.length - at < 4) return -1
    const length = buf.readInt32BE(at)
    if (length < 0) throw new Error('COPY binary: unexpected NULL value')
    at += 4 + length
    if (at > buf.length) return -1
  }
  return at
}
