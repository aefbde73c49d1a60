/**
 * The replication stream's integrity rules, on pgoutput bytes built here (issue 18): a strict
 * decoder (exact lengths, known markers) and the checker of pairing, LSN order, relations and
 * column counts. On main the decoder let trailing bytes, unknown tags and wrong markers through
 * and the stream applied commits outside a transaction.
 */
import { describe, expect, it } from 'vitest'
import { decodePgoutput } from '../../src/replication/pgoutput-decoder.js'
import { StreamIntegrity } from '../../src/replication/stream-integrity.js'

const u8 = (n: number) => Buffer.of(n)
const i16 = (n: number) => Buffer.from([(n >> 8) & 0xff, n & 0xff])
const u32 = (n: number) => {
  const b = Buffer.alloc(4)
  b.writeUInt32BE(n)
  return b
}
const u64 = (n: bigint) => {
  const b = Buffer.alloc(8)
  b.writeBigUInt64BE(n)
  return b
}
const str = (s: string) => Buffer.concat([Buffer.from(s), u8(0)])
const tag = (c: string) => Buffer.from(c)
const text = (s: string) => Buffer.concat([tag('t'), u32(Buffer.byteLength(s)), Buffer.from(s)])
const tuple = (...values: Buffer[]) => Buffer.concat([i16(values.length), ...values])

const begin = (lsn: bigint, xid = 7) => Buffer.concat([tag('B'), u64(lsn), u64(0n), u32(xid)])
const commit = (lsn: bigint, end = lsn + 8n) => Buffer.concat([tag('C'), u8(0), u64(lsn), u64(end), u64(0n)])
const relation = (oid: number, identity = 'f', columns = ['id', 'v']) =>
  Buffer.concat([tag('R'), u32(oid), str('public'), str('t'), tag(identity), i16(columns.length), ...columns.flatMap((c) => [u8(0), str(c), u32(25), u32(0xffffffff)])])
const insert = (oid: number, ...values: Buffer[]) => Buffer.concat([tag('I'), u32(oid), tag('N'), tuple(...values)])
const update = (oid: number, old: Buffer | undefined, ...values: Buffer[]) =>
  Buffer.concat([tag('U'), u32(oid), ...(old ? [tag('O'), old] : []), tag('N'), tuple(...values)])
const del = (oid: number, kind: string, ...values: Buffer[]) => Buffer.concat([tag('D'), u32(oid), tag(kind), tuple(...values)])

function run(...frames: Buffer[]): void {
  const integrity = new StreamIntegrity()
  for (const frame of frames) integrity.check(decodePgoutput(frame))
}

describe('decodePgoutput', () => {
  it('decodes every message the stream sends, the commit timestamp included', () => {
    expect(decodePgoutput(commit(100n))).toEqual({ tag: 'commit', commitLsn: 100n, endLsn: 108n })
    expect(decodePgoutput(insert(5, text('1'), u8(0x6e)))).toEqual({ tag: 'insert', relationOid: 5, tuple: ['1', null] })
    expect(decodePgoutput(Buffer.concat([tag('Y'), u32(9), str('public'), str('mood')])).tag).toBe('other')
    expect(decodePgoutput(Buffer.concat([tag('O'), u64(1n), str('origin')])).tag).toBe('other')
  })

  it.each([
    ['cut short', insert(5, text('hello')).subarray(0, 16), /needed 5 more from byte 13/],
    ['with bytes after its end', Buffer.concat([begin(100n), u8(1)]), /ended before them/],
    ['of an unknown type', Buffer.concat([tag('Z'), u32(1)]), /unknown message type 0x5a/],
    ['an insert without its N marker', Buffer.concat([tag('I'), u32(5), tag('O'), tuple(text('1'))]), /insert: expected one of N/],
    ['a delete without its old row marker', Buffer.concat([tag('D'), u32(5), tag('N'), tuple(text('1'))]), /delete: expected one of KO/],
    ['an unchanged TOAST value in an insert', insert(5, u8(0x75)), /unexpected tuple value kind 0x75/],
    ['a tuple with a negative column count', Buffer.concat([tag('I'), u32(5), tag('N'), i16(-2)]), /tuple with -2 columns/],
    ['an unterminated name', Buffer.concat([tag('R'), u32(5), Buffer.from('public')]), /unterminated string/],
    ['empty', Buffer.alloc(0), /undecodable: .*outside buffer bounds/],
    ['with a fixed-size field cut short', begin(100n).subarray(0, 12), /undecodable: .*out of range/],
  ])('refuses a message %s', (_name, bytes, reason) => {
    const message = decodePgoutput(bytes)
    expect(message).toMatchObject({ tag: 'invalid', reason: expect.stringMatching(reason) })
  })
})

describe('StreamIntegrity', () => {
  it('passes a well-formed stream', () => {
    expect(() =>
      run(
        relation(5),
        begin(100n),
        insert(5, text('1'), text('a')),
        update(5, tuple(text('1'), text('a')), text('1'), u8(0x75)),
        del(5, 'O', text('1'), text('a')),
        commit(100n),
        begin(200n),
        relation(5),
        Buffer.concat([tag('T'), u32(1), u8(0), u32(5)]),
        commit(200n),
      ),
    ).not.toThrow()
  })

  it.each([
    ['an undecodable message', [relation(5), begin(100n), insert(5, text('1')).subarray(0, 9)], /undecodable message/],
    ['a Begin inside an open transaction', [begin(100n), begin(200n)], /Begin of a transaction \(commit LSN 200\) while transaction 100 is open/],
    ['a Commit outside a transaction', [commit(100n)], /Commit \(LSN 100\) outside a transaction/],
    ['a Commit whose LSN is not its Begin\'s', [begin(100n), commit(101n)], /Commit LSN 101 differs from its Begin's 100/],
    ['a Commit that ends before it starts', [begin(100n), commit(100n, 100n)], /Commit ends at 100/],
    ['a commit LSN that goes backwards', [begin(200n), commit(200n), begin(100n)], /commit LSN went backwards: 100 after 200/],
    ['a repeated transaction', [begin(200n), commit(200n), begin(200n)], /went backwards: 200 after 200/],
    ['a change outside a transaction', [relation(5), insert(5, text('1'), text('a'))], /insert outside a transaction/],
    ['a change of an unknown relation', [relation(5), begin(100n), insert(6, text('1'), text('a'))], /insert of relation 6, which no Relation message described/],
    ['a truncate of an unknown relation', [begin(100n), Buffer.concat([tag('T'), u32(1), u8(0), u32(6)])], /truncate of unknown relation 6/],
    ['a tuple with too few columns', [relation(5), begin(100n), insert(5, text('1'))], /insert with 1 columns for a relation of 2/],
    ['an old row with too many columns', [relation(5), begin(100n), del(5, 'O', text('1'), text('a'), text('x'))], /delete with 3 columns/],
    ['an update of a FULL relation without its old row', [relation(5), begin(100n), update(5, undefined, text('1'), text('a'))], /without its old row/],
    ['a delete of a FULL relation with only its key', [relation(5), begin(100n), del(5, 'K', text('1'), u8(0x6e))], /without its old row/],
  ])('refuses %s', (_name, frames, reason) => {
    expect(() => run(...frames)).toThrow(reason)
  })

  it('allows an update without its old row when the relation is not REPLICA IDENTITY FULL', () => {
    expect(() => run(relation(5, 'd'), begin(100n), update(5, undefined, text('1'), text('b')), commit(100n))).not.toThrow()
  })
})
