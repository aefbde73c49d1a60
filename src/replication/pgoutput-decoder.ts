/**
 * Decodes pgoutput messages (https://www.postgresql.org/docs/current/protocol-logicalrep-message-formats.html).
 * Written here rather than taken from `pg-logical-replication`'s parser because that one turns
 * values into JS types (losing the exact text), reads xids as signed and LSNs as strings.
 */
import type { Lsn } from '../pg/lsn.js'
import {
  UNCHANGED_TOAST,
  type OldTupleKind,
  type PgoutputMessage,
  type RelationColumn,
  type Tuple,
  type TupleValue,
} from './pgoutput-messages.js'

/** Bytes that break the message format: a message that cannot be trusted, never applied. */
export class MalformedMessageError extends Error {}

/** Fixed-size reads past the end throw Node's own RangeError; text and strings check here. */
class Reader {
  #pos = 0
  constructor(readonly buf: Buffer) {}
  get done(): boolean {
    return this.#pos === this.buf.length
  }
  #take(n: number): number {
    const at = this.#pos
    if (at + n > this.buf.length) throw new MalformedMessageError(`message ends at byte ${this.buf.length}, needed ${n} more from byte ${at}`)
    this.#pos += n
    return at
  }
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
    if (end === -1) throw new MalformedMessageError(`unterminated string from byte ${this.#pos}`)
    const at = this.#take(end + 1 - this.#pos)
    return this.buf.toString('utf8', at, end)
  }
  /** `n` bytes of UTF-8 as text (invalid sequences become U+FFFD), without a Buffer view per value. */
  text(n: number): string {
    const at = this.#take(n)
    return this.buf.toString('utf8', at, at + n)
  }
  /** A marker byte that must be one of `allowed`. */
  marker(what: string, allowed: string): string {
    const byte = String.fromCharCode(this.u8())
    if (!allowed.includes(byte)) throw new MalformedMessageError(`${what}: expected one of ${allowed}, got 0x${byte.charCodeAt(0).toString(16)}`)
    return byte
  }
}

/**
 * Decodes one message, strictly: every marker byte must be one pgoutput sends, every count and
 * length must fit, and the message must end exactly where its last field does. Never throws:
 * what fails is returned as `invalid`, for the stream to refuse (see `stream-integrity.ts`).
 */
export function decodePgoutput(buf: Buffer): PgoutputMessage {
  try {
    const r = new Reader(buf)
    const message = decodeFields(r)
    if (!r.done) throw new MalformedMessageError(`${buf.length} bytes, but the ${message.tag} message ended before them`)
    return message
  } catch (error) {
    const reason = error instanceof MalformedMessageError ? error.message : `undecodable: ${(error as Error).message}`
    return { tag: 'invalid', reason, bytes: buf }
  }
}

function decodeFields(r: Reader): PgoutputMessage {
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
      r.u64() // commit timestamp
      return { tag: 'commit', commitLsn, endLsn }
    }
    case 0x52 /* R */: {
      const oid = r.u32()
      const schema = r.cstring()
      const name = r.cstring()
      const replicaIdentity = r.marker('replica identity', 'dnfi')
      const count = r.i16()
      if (count < 0) throw new MalformedMessageError(`relation with ${count} columns`)
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
      r.marker('insert', 'N')
      return { tag: 'insert', relationOid, tuple: readTuple(r, false) }
    }
    case 0x55 /* U */: {
      const relationOid = r.u32()
      const kind = r.marker('update', 'KON')
      if (kind === 'N') return { tag: 'update', relationOid, old: undefined, tuple: readTuple(r, true) }
      const old = readTuple(r, false)
      r.marker('update', 'N')
      return { tag: 'update', relationOid, oldKind: kind as OldTupleKind, old, tuple: readTuple(r, true) }
    }
    case 0x44 /* D */: {
      const relationOid = r.u32()
      const oldKind = r.marker('delete', 'KO') as OldTupleKind
      return { tag: 'delete', relationOid, oldKind, old: readTuple(r, false) }
    }
    case 0x54 /* T */: {
      const count = r.u32()
      r.u8() // options
      const relationOids: number[] = []
      for (let i = 0; i < count; i++) relationOids.push(r.u32())
      return { tag: 'truncate', relationOids }
    }
    case 0x59 /* Y */: {
      r.u32() // type oid
      r.cstring() // namespace
      r.cstring() // name
      return { tag: 'other' }
    }
    case 0x4f /* O */: {
      r.u64() // origin LSN
      r.cstring() // origin name
      return { tag: 'other' }
    }
    default:
      throw new MalformedMessageError(`unknown message type 0x${tag.toString(16)}`)
  }
}

/** `unchangedAllowed`: only an update's new row may leave a TOASTed value out. */
function readTuple(r: Reader, unchangedAllowed: boolean): Tuple {
  const count = r.i16()
  if (count < 0) throw new MalformedMessageError(`tuple with ${count} columns`)
  const values: TupleValue[] = new Array<TupleValue>(count)
  for (let i = 0; i < count; i++) {
    const kind = r.u8()
    if (kind === 0x74 /* t */) values[i] = r.text(r.u32())
    else if (kind === 0x6e /* n */) values[i] = null
    else if (kind === 0x75 /* u */ && unchangedAllowed) values[i] = UNCHANGED_TOAST
    else throw new MalformedMessageError(`unexpected tuple value kind 0x${kind.toString(16)} in column ${i + 1}`)
  }
  return values
}
