/**
 * pgoutput (protocol version 1) messages as PostgreSQL sends them, for tests that feed the stream
 * without a database: Begin, Relation (int4 columns), Insert (text values) and Commit.
 */
function fixed(bytes: number, write: (b: Buffer) => void): Buffer {
  const b = Buffer.alloc(bytes)
  write(b)
  return b
}

const u64 = (value: bigint) => fixed(8, (b) => b.writeBigUInt64BE(value))
const u32 = (value: number) => fixed(4, (b) => b.writeUInt32BE(value))
const u16 = (value: number) => fixed(2, (b) => b.writeUInt16BE(value))
const cstring = (text: string) => Buffer.from(`${text}\0`)

export function beginMessage(xid: number, finalLsn: bigint): Buffer {
  return Buffer.concat([Buffer.from('B'), u64(finalLsn), u64(0n), u32(xid)])
}

export function commitMessage(commitLsn: bigint, endLsn: bigint): Buffer {
  return Buffer.concat([Buffer.from('C'), Buffer.from([0]), u64(commitLsn), u64(endLsn), u64(0n)])
}

/** A table `public.<name>` of int4 columns, the first the key. */
export function relationMessage(oid: number, name: string, columns: readonly string[]): Buffer {
  const described = columns.map((column, i) => Buffer.concat([Buffer.from([i === 0 ? 1 : 0]), cstring(column), u32(23), u32(0xffffffff)]))
  return Buffer.concat([Buffer.from('R'), u32(oid), cstring('public'), cstring(name), Buffer.from('d'), u16(columns.length), ...described])
}

export function insertMessage(oid: number, values: readonly string[]): Buffer {
  const tuple = values.map((value) => Buffer.concat([Buffer.from('t'), u32(Buffer.byteLength(value)), Buffer.from(value)]))
  return Buffer.concat([Buffer.from('I'), u32(oid), Buffer.from('N'), u16(values.length), ...tuple])
}
