/**
 * Decodes pgoutput messages (https://www.postgresql.org/docs/current/protocol-logicalrep-message-formats.html).
 * Written here rather than taken from `pg-logical-replication`'s parser because that one turns
 * values into JS types (losing the exact text), reads xids as signed and LSNs as strings.
 */
import type { Lsn } from '../pg/lsn.js'
import {
  UNCHANGED_TOAST,
  type PgoutputMessage,
  type RelationColumn,
  type Tuple,
  type TupleValue,
} from './pgoutput-messages.js'

class Reader {
  #pos = 0
  constructor(readonly buf: Buffer) {}
  u8(): number {
    return this.buf.readUInt8(this.#pos++)
  }
  i16(): number {
    const v = this.buf.readInt16BE(this.#pos)
    this.#pos += 2
    return v
  }
  u32(): number {
    const v = this.buf.readUInt32BE(this.#pos)
    this.#pos += 4
    return v
  }
  i32(): number {
    const v = this.buf.readInt32BE(this.#pos)
    this.#pos += 4
    return v
  }
  u64(): bigint {
    const v = this.buf.readBigUInt64BE(this.#pos)
    this.#pos += 8
    return v
  }
  cstring(): string {
    const end = this.buf.indexOf(0, this.#pos)
    const s = this.buf.toString('utf8', this.#pos, end)
    this.#pos = end + 1
    return s
  }
  /** `n` bytes of UTF-8 as text (invalid sequences become U+FFFD), without a Buffer view per value. */
  text(n: number): string {
    const s = this.buf.toString('utf8', this.#pos, this.#pos + n)
    this.#pos += n
    return s
  }
}

export function decodePgoutput(buf: Buffer): PgoutputMessage {
  const r = new Reader(buf)
  const tag = r.u8()
  switch (tag) {
    case 0x42 /* B */: {
      const finalLsn = r.u64() as Lsn
      r.u64() // commit timestamp
      return { tag: 'begin', finalLsn, xid: r.u32() }
    }
    case 0x43 /* C */: {
      r.u8() // flags
      const commitLsn = r.u64() as Lsn
      const endLsn = r.u64() as Lsn
      return { tag: 'commit', commitLsn, endLsn }
    }
    case 0x52 /* R */: {
      const oid = r.u32()
      const schema = r.cstring()
      const name = r.cstring()
      const replicaIdentity = String.fromCharCode(r.u8())
      const count = r.i16()
      const columns: RelationColumn[] = []
      for (let i = 0; i < count; i++) {
        const flags = r.u8()
        const columnName = r.cstring()
        const typeOid = r.u32()
        r.i32() // type modifier
        columns.push({ name: columnName, typeOid, isKey: (flags & 1) === 1 })
      }
      return { tag: 'relation', oid, schema, name, replicaIdentity, columns }
    }
    case 0x49 /* I */: {
      const relationOid = r.u32()
      r.u8() // 'N'
      return { tag: 'insert', relationOid, tuple: readTuple(r) }
    }
    case 0x55 /* U */: {
      const relationOid = r.u32()
      const kind = r.u8()
      let old: Tuple | undefined
      if (kind === 0x4b /* K */ || kind === 0x4f /* O */) {
        old = readTuple(r)
        r.u8() // 'N'
      }
      return { tag: 'update', relationOid, old, tuple: readTuple(r) }
    }
    case 0x44 /* D */: {
      const relationOid = r.u32()
      r.u8() // 'K' or 'O'
      return { tag: 'delete', relationOid, old: readTuple(r) }
    }
    case 0x54 /* T */: {
      const count = r.u32()
      r.u8() // options
      const relationOids: number[] = []
      for (let i = 0; i < count; i++) relationOids.push(r.u32())
      return { tag: 'truncate', relationOids }
    }
    default:
      return { tag: 'other' }
  }
}

function readTuple(r: Reader): Tuple {
  const count = r.i16()
  const values: TupleValue[] = new Array<TupleValue>(count)
  for (let i = 0; i < count; i++) {
    const kind = r.u8()
    if (kind === 0x74 /* t */) values[i] = r.text(r.u32())
    else if (kind === 0x6e /* n */) values[i] = null
    else if (kind === 0x75 /* u */) values[i] = UNCHANGED_TOAST
    else throw new Error(`pgoutput: unexpected tuple value kind ${String.fromCharCode(kind)}`)
  }
  return values
}
