import { describe, expect, it } from 'vitest'
import { CopyBinaryRowReader } from '../../src/pg/copy-binary.js'

const SIGNATURE = Buffer.from([0x50, 0x47, 0x43, 0x4f, 0x50, 0x59, 0x0a, 0xff, 0x0d, 0x0a, 0x00]) // PGCOPY\n\xff\r\n\0

function int16(value: number): Buffer {
  const b = Buffer.alloc(2)
  b.writeInt16BE(value)
  return b
}

function int32(value: number): Buffer {
  const b = Buffer.alloc(4)
  b.writeInt32BE(value)
  return b
}

/** A one-column binary COPY stream, as PostgreSQL writes it. */
function copyStream(values: readonly string[], extension: Buffer = Buffer.alloc(0)): Buffer {
  const parts: Buffer[] = [SIGNATURE, int32(0), int32(extension.length), extension]
  for (const value of values) {
    const bytes = Buffer.from(value, 'utf8')
    parts.push(int16(1), int32(bytes.length), bytes)
  }
  parts.push(int16(-1))
  return Buffer.concat(parts)
}

/** Feeds `stream` in chunks of `size` bytes and collects the values as text. */
function readInChunks(stream: Buffer, size: number): { values: string[]; reader: CopyBinaryRowReader } {
  const reader = new CopyBinaryRowReader()
  const values: string[] = []
  for (let at = 0; at < stream.length; at += size) {
    // Copy each chunk so values cannot alias the test's buffer by accident.
    for (const row of reader.push(Buffer.from(stream.subarray(at, at + size)))) values.push(row.toString('utf8'))
  }
  return { values, reader }
}

const VALUES = [
  '{"key":"\\"public\\".\\"items\\"/\\"1\\"","value":{"id":"1","title":"a"}}',
  '',
  'x',
  'Zürich ☃ 日本',
  'a'.repeat(300),
  '',
]

describe('CopyBinaryRowReader', () => {
  it('reads every value from one chunk', () => {
    const { values, reader } = readInChunks(copyStream(VALUES), Number.MAX_SAFE_INTEGER)
    expect(values).toEqual(VALUES)
    expect(reader.ended).toBe(true)
  })

  it('reads every value from 1-byte chunks', () => {
    const { values, reader } = readInChunks(copyStream(VALUES), 1)
    expect(values).toEqual(VALUES)
    expect(reader.ended).toBe(true)
  })

  it.each([2, 3, 5, 7, 18, 19, 20, 64])('reads every value from %i-byte chunks', (size) => {
    expect(readInChunks(copyStream(VALUES), size).values).toEqual(VALUES)
  })

  it('returns each value as soon as its last byte arrives', () => {
    const stream = copyStream(['ab', 'cd'])
    const reader = new CopyBinaryRowReader()
    // header 19 + row 1 (2 + 4 + 2) = 27 bytes complete the first value.
    expect(reader.push(stream.subarray(0, 26))).toEqual([])
    expect(reader.push(stream.subarray(26, 27)).map(String)).toEqual(['ab'])
    expect(reader.ended).toBe(false)
    expect(reader.push(stream.subarray(27, 35)).map(String)).toEqual(['cd'])
    expect(reader.ended).toBe(false)
    expect(reader.push(stream.subarray(35))).toEqual([])
    expect(reader.ended).toBe(true)
  })

  it('reads only empty-string values', () => {
    expect(readInChunks(copyStream(['', '', '']), 1).values).toEqual(['', '', ''])
    expect(readInChunks(copyStream(['', '', '']), 1000).values).toEqual(['', '', ''])
  })

  it('reads an empty result (header and trailer only)', () => {
    const { values, reader } = readInChunks(copyStream([]), 1)
    expect(values).toEqual([])
    expect(reader.ended).toBe(true)
  })

  it('skips a header extension area', () => {
    const extension = Buffer.from('ignored-ext')
    expect(readInChunks(copyStream(['v1', 'v2'], extension), 1).values).toEqual(['v1', 'v2'])
    expect(readInChunks(copyStream(['v1', 'v2'], extension), 4096).values).toEqual(['v1', 'v2'])
  })

  it('is not ended before the trailer', () => {
    const stream = copyStream(['a'])
    const reader = new CopyBinaryRowReader()
    expect(reader.push(stream.subarray(0, stream.length - 1)).map(String)).toEqual(['a'])
    expect(reader.ended).toBe(false)
  })

  it('throws on a bad signature', () => {
    const stream = copyStream(['a'])
    stream[0] = 0x51 // 'Q'
    expect(() => new CopyBinaryRowReader().push(stream)).toThrow('COPY binary: bad signature')
  })

  it('throws on a bad signature fed byte by byte, once the header is complete', () => {
    const stream = copyStream(['a'])
    stream[7] = 0xfe // \xff → \xfe, as a text-mode transfer could mangle it
    const reader = new CopyBinaryRowReader()
    for (let at = 0; at < 18; at++) expect(reader.push(stream.subarray(at, at + 1))).toEqual([])
    expect(() => reader.push(stream.subarray(18, 19))).toThrow('COPY binary: bad signature')
  })

  it('throws on a row with more than one field', () => {
    const stream = Buffer.concat([SIGNATURE, int32(0), int32(0), int16(2), int32(1), Buffer.from('a'), int32(1), Buffer.from('b')])
    expect(() => new CopyBinaryRowReader().push(stream)).toThrow('COPY binary: expected 1 field, got 2')
  })

  it('throws on a NULL value', () => {
    const stream = Buffer.concat([SIGNATURE, int32(0), int32(0), int16(1), int32(-1), int16(-1)])
    expect(() => new CopyBinaryRowReader().push(stream)).toThrow('COPY binary: unexpected NULL value')
  })

  it('reads rows of several fields flat, field after field, from any chunking', () => {
    const row = (...fields: string[]) => Buffer.concat([int16(fields.length), ...fields.flatMap((f) => [int32(Buffer.byteLength(f)), Buffer.from(f)])])
    const stream = Buffer.concat([SIGNATURE, int32(0), int32(0), row('1', 'a,b', '{}'), row('2', '', 'x'), int16(-1)])
    for (const size of [1, 5, 31, stream.length]) {
      const reader = new CopyBinaryRowReader(3)
      const values: string[] = []
      for (let at = 0; at < stream.length; at += size) for (const value of reader.push(stream.subarray(at, at + size))) values.push(value.toString())
      expect(values).toEqual(['1', 'a,b', '{}', '2', '', 'x'])
      expect(reader.ended).toBe(true)
    }
    expect(() => new CopyBinaryRowReader(3).push(Buffer.concat([SIGNATURE, int32(0), int32(0), row('1')]))).toThrow('COPY binary: expected 3 fields, got 1')
  })
})
