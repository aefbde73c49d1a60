import { mkdtemp, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { lsn } from '../../src/pg/lsn.js'
import { formatOffset, parseOffset, type Offset } from '../../src/protocol/offset.js'
import { definitionKey, type ShapeDefinition } from '../../src/shapes/shape-definition.js'
import { parseShapeHandle } from '../../src/shapes/shape-handle.js'
import { ShapeLogStore, type ShapeAppend, type SnapshotInfo } from '../../src/storage/shape-log-store.js'

const CHUNK_BYTES = 100

const ITEMS: ShapeDefinition = { table: { schema: 'public', name: 'items' }, replica: 'default', log: 'full' }
const OTHER: ShapeDefinition = { table: { schema: 'public', name: 'other' }, replica: 'full', log: 'full' }
const SNAPSHOT: SnapshotInfo = { xmin: '100', xmax: '105', xip: ['101', '103'] }

const off = (text: string): Offset => {
  const offset = parseOffset(text)
  if (!offset) throw new Error(`bad offset in test: ${text}`)
  return offset
}

/** A value of exactly `size` bytes that names itself, so reads can be checked by content. */
const value = (name: string, size: number): Buffer => Buffer.from(name.padEnd(size, '.'))

/** `n` snapshot rows of `size` bytes: `r0....`, `r1....`, … */
const rows = (from: number, n: number, size: number): Buffer[] =>
  Array.from({ length: n }, (_, i) => value(`r${from + i}`, size))

/** One transaction's entries at `<tx>_0 … <tx>_<n-1>`, each `size` bytes. */
const txEntries = (tx: bigint, n: number, size: number): Omit<ShapeAppend, 'shapeId'> => ({
  tx: lsn(tx),
  firstOp: 0,
  entries: Array.from({ length: n }, (_, op) => `${tx}_${op}`.padEnd(size, '.')),
})

const names = (values: readonly Buffer[]): string[] => values.map((b) => b.toString().replace(/\.+$/, ''))

let dir: string
let store: ShapeLogStore | undefined

const open = (): ShapeLogStore => {
  store = ShapeLogStore.open(dir, { chunkBytes: CHUNK_BYTES })
  return store
}

const reopen = async (): Promise<ShapeLogStore> => {
  await store?.close()
  store = undefined
  return open()
}

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sluice-unit-store-'))
})

afterEach(async () => {
  vi.restoreAllMocks()
  await store?.close()
  store = undefined
  await rm(dir, { recursive: true, force: true })
})

describe('createShape', () => {
  it('registers a snapshotting shape with a well-formed handle', async () => {
    const s = open()
    const shape = await s.createShape(ITEMS, definitionKey(ITEMS))
    expect(shape).toMatchObject({ id: 1, definition: ITEMS, definitionKey: definitionKey(ITEMS), status: 'snapshotting' })
    expect(parseShapeHandle(shape.handle)).toBe(shape.handle)
    expect(s.getShape(shape.id)).toEqual(shape)
    expect(s.shapes()).toEqual([shape])
  })

  it('issues distinct handles and ids, even for one definition in one instant', async () => {
    vi.spyOn(Date, 'now').mockReturnValue(1_732_623_456_789)
    const s = open()
    const created = []
    for (let i = 0; i < 5; i++) created.push(await s.createShape(ITEMS, definitionKey(ITEMS)))
    expect(new Set(created.map((c) => c.handle)).size).toBe(5)
    expect(created.map((c) => c.id)).toEqual([1, 2, 3, 4, 5])
  })

  it('never repeats a handle or id across close/reopen, deletes, and a clock that steps back', async () => {
    const seen = new Set<string>()
    const ids = new Set<number>()
    const now = vi.spyOn(Date, 'now').mockReturnValue(1_732_623_456_789)
    let s = open()
    for (let i = 0; i < 3; i++) {
      const shape = await s.createShape(ITEMS, definitionKey(ITEMS))
      seen.add(shape.handle)
      ids.add(shape.id)
      await s.deleteShape(shape.id)
    }
    now.mockReturnValue(1_000_000_000_000) // the clock stepped back by years
    s = await reopen()
    expect(s.shapes()).toEqual([])
    for (let i = 0; i < 3; i++) {
      const shape = await s.createShape(ITEMS, definitionKey(ITEMS))
      expect(seen.has(shape.handle)).toBe(false)
      expect(ids.has(shape.id)).toBe(false)
      seen.add(shape.handle)
      ids.add(shape.id)
    }
    expect(seen.size).toBe(6)
    expect([...ids]).toEqual([1, 2, 3, 4, 5, 6])
  })

  it('keeps shapes across reopen', async () => {
    let s = open()
    const a = await s.createShape(ITEMS, definitionKey(ITEMS))
    const b = await s.createShape(OTHER, definitionKey(OTHER))
    s = await reopen()
    expect(s.shapes()).toEqual([a, b])
  })
})

describe('snapshot', () => {
  it('numbers its chunks as Electric does: chunk n ends at 0_n, closed by the row whose bytes reach the limit', async () => {
    const s = open()
    const { id } = await s.createShape(ITEMS, definitionKey(ITEMS))
    // 30 bytes + 1 per row: 31, 62, 93, 124 → chunk 0 ends after r3, chunk 1 after r7.
    await s.appendSnapshotRows(id, rows(0, 2, 30))
    await s.appendSnapshotRows(id, rows(2, 8, 30))
    expect(s.chunkEndAfter(id, off('-1'))).toEqual(off('0_0'))
    expect(s.chunkEndAfter(id, off('0_0'))).toEqual(off('0_1'))
    // Chunk 2 is still open.
    expect(s.chunkEndAfter(id, off('0_1'))).toBeUndefined()
    expect(names(s.read(id, off('-1'), off('0_0')))).toEqual(['r0', 'r1', 'r2', 'r3'])
    expect(names(s.read(id, off('0_0'), off('0_1')))).toEqual(['r4', 'r5', 'r6', 'r7'])
    // Readers wait for the snapshot's end before they are told of a head.
    expect(s.head(id)).toBeUndefined()
  })

  it('counts a row of exactly the limit as a full chunk', async () => {
    const s = open()
    const { id } = await s.createShape(ITEMS, definitionKey(ITEMS))
    await s.appendSnapshotRows(id, [value('big', CHUNK_BYTES - 1), value('small', 10), value('huge', 500)])
    expect(s.chunkEndAfter(id, off('-1'))).toEqual(off('0_0'))
    expect(names(s.read(id, off('-1'), off('0_0')))).toEqual(['big'])
    expect(s.chunkEndAfter(id, off('0_0'))).toEqual(off('0_1'))
    expect(names(s.read(id, off('0_0'), off('0_1')))).toEqual(['small', 'huge'])
  })

  it('ends its last chunk with the end message, marks the shape ready, and sends requests past it to the log', async () => {
    const s = open()
    const { id } = await s.createShape(ITEMS, definitionKey(ITEMS))
    await s.appendSnapshotRows(id, rows(0, 5, 30))
    await s.finishSnapshot(id, Buffer.from('{"headers":{"control":"snapshot-end"}}'), SNAPSHOT)
    expect(s.chunkEndAfter(id, off('0_0'))).toEqual(off('0_1'))
    expect(s.head(id)).toEqual(off('0_1'))
    expect(s.read(id, off('0_0'), off('0_1')).map(String)).toEqual(['r4............................', '{"headers":{"control":"snapshot-end"}}'])
    expect(s.getShape(id)).toMatchObject({ status: 'ready', snapshot: SNAPSHOT, lastSnapshotChunk: 1 })
    // At or past the last chunk (and at 0_inf): the log, which is empty.
    for (const at of ['0_1', '0_7', '0_inf']) expect(s.chunkEndAfter(id, off(at))).toBeUndefined()
    await s.commit({ durableLsn: lsn(1001n), appends: [{ shapeId: id, ...txEntries(1000n, 5, 20) }] })
    for (const at of ['0_1', '0_7', '0_inf']) {
      expect(s.chunkEndAfter(id, off(at))).toEqual(off('1000_4'))
      expect(names(s.read(id, off(at), off('1000_4')))).toEqual(['1000_0', '1000_1', '1000_2', '1000_3', '1000_4'])
    }
  })

  it('starts a chunk of its own for the end message when the last row closed one', async () => {
    const s = open()
    const { id } = await s.createShape(ITEMS, definitionKey(ITEMS))
    await s.appendSnapshotRows(id, [value('big', CHUNK_BYTES)])
    await s.finishSnapshot(id, Buffer.from('end'), SNAPSHOT)
    expect(names(s.read(id, off('-1'), off('0_0')))).toEqual(['big'])
    expect(names(s.read(id, off('0_0'), off('0_1')))).toEqual(['end'])
    expect(s.head(id)).toEqual(off('0_1'))
  })

  it('finishes an empty snapshot in one chunk', async () => {
    const s = open()
    const { id } = await s.createShape(ITEMS, definitionKey(ITEMS))
    expect(s.head(id)).toBeUndefined()
    await s.finishSnapshot(id, Buffer.from('end'), SNAPSHOT)
    expect(s.chunkEndAfter(id, off('-1'))).toEqual(off('0_0'))
    expect(s.read(id, off('-1'), off('0_0')).map(String)).toEqual(['end'])
    expect(s.head(id)).toEqual(off('0_0'))
    expect((await reopen()).head(id)).toEqual(off('0_0'))
  })
})

/** A shape with a finished 2-row snapshot, ready for log appends. */
async function readyShape(s: ShapeLogStore, definition = ITEMS): Promise<number> {
  const { id } = await s.createShape(definition, definitionKey(definition))
  await s.appendSnapshotRows(id, rows(0, 2, 10))
  await s.finishSnapshot(id, Buffer.from('end'), SNAPSHOT)
  return id
}

describe('commit', () => {
  it('closes a chunk after the first entry past the limit, inside a transaction too', async () => {
    const s = open()
    const id = await readyShape(s)
    // 20 + 1 bytes per entry. tx 1000: 63 bytes, open. tx 2000: reaches 105 at op 1 and closes
    // there; ops 2 and 3 open the next chunk.
    await s.commit({ durableLsn: lsn(1000n), appends: [{ shapeId: id, ...txEntries(1000n, 3, 20) }] })
    expect(s.chunkEndAfter(id, off('0_0'))).toBeUndefined()
    await s.commit({ durableLsn: lsn(2000n), appends: [{ shapeId: id, ...txEntries(2000n, 4, 20) }] })
    expect(s.chunkEndAfter(id, off('0_0'))).toEqual(off('2000_1'))
    expect(s.chunkEndAfter(id, off('1000_2'))).toEqual(off('2000_1'))
    expect(s.chunkEndAfter(id, off('2000_1'))).toBeUndefined()
    expect(names(s.read(id, off('0_0'), off('2000_1')))).toEqual(['1000_0', '1000_1', '1000_2', '2000_0', '2000_1'])
    // 42 bytes carried over: the next transaction's third entry closes the next chunk.
    await s.commit({ durableLsn: lsn(3000n), appends: [{ shapeId: id, ...txEntries(3000n, 3, 20) }] })
    expect(s.chunkEndAfter(id, off('2000_1'))).toEqual(off('3000_2'))
    expect(s.head(id)).toEqual(off('3000_2'))
  })

  it('cuts one large transaction into bounded chunks', async () => {
    const s = open()
    const id = await readyShape(s)
    await s.commit({ durableLsn: lsn(10n), appends: [{ shapeId: id, ...txEntries(10n, 20, 20) }] })
    const ends: string[] = []
    for (let after: Offset | undefined = off('0_0'); (after = s.chunkEndAfter(id, after)); ) ends.push(formatOffset(after))
    expect(ends).toEqual(['10_4', '10_9', '10_14', '10_19'])
  })

  it('shows no boundary of a staged transaction before its commit', async () => {
    const s = open()
    const id = await readyShape(s)
    await s.commit({ durableLsn: lsn(1001n), appends: [{ shapeId: id, ...txEntries(1000n, 1, 20) }] })
    await s.stage([{ shapeId: id, ...txEntries(2000n, 8, 20) }])
    expect(s.chunkEndAfter(id, off('0_0'))).toBeUndefined()
    expect(s.chunkEndAfter(id, off('1000_0'))).toBeUndefined()
    await s.commit({ durableLsn: lsn(2001n), appends: [{ shapeId: id, tx: lsn(2000n), firstOp: 8, entries: ['2000_8'.padEnd(20, '.')] }] })
    expect(s.chunkEndAfter(id, off('0_0'))).toEqual(off('2000_3'))
    expect(s.chunkEndAfter(id, off('2000_3'))).toEqual(off('2000_8'))
  })

  it('writes the same chunks when a staged transaction is received again after a reconnect', async () => {
    const s = open()
    const id = await readyShape(s)
    await s.commit({ durableLsn: lsn(1001n), appends: [{ shapeId: id, ...txEntries(1000n, 2, 20) }] })
    await s.stage([{ shapeId: id, ...txEntries(2000n, 9, 20) }])
    s.discardStaged()
    // The replay of the same transaction, staged in other pieces.
    await s.stage([{ shapeId: id, ...txEntries(2000n, 3, 20) }])
    const rest = txEntries(2000n, 9, 20)
    await s.commit({ durableLsn: lsn(2001n), appends: [{ shapeId: id, tx: rest.tx, firstOp: 3, entries: rest.entries.slice(3) }] })
    const ends: string[] = []
    for (let after: Offset | undefined = off('0_0'); (after = s.chunkEndAfter(id, after)); ) ends.push(formatOffset(after))
    // 42 bytes from tx 1000, then 21 per entry: 105 at 2000_2, again at 2000_7.
    expect(ends).toEqual(['2000_2', '2000_7'])
    expect(s.head(id)).toEqual(off('2000_8'))
  })

  it('drops what a discarded transaction staged when it is not received again', async () => {
    const s = open()
    const id = await readyShape(s)
    await s.commit({ durableLsn: lsn(1001n), appends: [{ shapeId: id, ...txEntries(1000n, 2, 20) }] })
    await s.stage([{ shapeId: id, ...txEntries(2000n, 9, 20) }])
    s.discardStaged()
    await s.commit({ durableLsn: lsn(3001n), appends: [{ shapeId: id, ...txEntries(3000n, 4, 20) }] })
    expect(names(s.read(id, off('0_0'), off('3000_3')))).toEqual(['1000_0', '1000_1', '3000_0', '3000_1', '3000_2', '3000_3'])
    expect(s.chunkEndAfter(id, off('0_0'))).toEqual(off('3000_2'))
  })

  it('persists the durable LSN across reopen and never moves it back', async () => {
    let s = open()
    expect(s.durableLsn).toBe(0n)
    const id = await readyShape(s)
    const committed = await s.commit({ durableLsn: lsn(5000n), appends: [{ shapeId: id, ...txEntries(4000n, 1, 5) }] })
    // Visible at once; durable (and acknowledgeable) only once flushed.
    expect(s.committedLsn).toBe(5000n)
    expect(names(s.read(id, off('0_inf'), off('4000_0')))).toEqual(['4000_0'])
    await committed.durable
    expect(s.durableLsn).toBe(5000n)
    await (await s.commit({ durableLsn: lsn(4500n), appends: [] })).durable
    expect(s.durableLsn).toBe(5000n)
    expect(s.committedLsn).toBe(5000n)
    await s.commit({ durableLsn: lsn(0x1_0000_0000_0000n), appends: [] })
    s = await reopen()
    expect(s.durableLsn).toBe(0x1_0000_0000_0000n)
    expect(s.committedLsn).toBe(0x1_0000_0000_0000n)
    expect(names(s.read(id, off('0_inf'), off('4000_0')))).toEqual(['4000_0'])
  })

  it('continues the open chunk after reopen', async () => {
    let s = open()
    const id = await readyShape(s)
    // As in replication: a batch's LSN is its commit's end, past its entries' commit LSN.
    await s.commit({ durableLsn: lsn(1001n), appends: [{ shapeId: id, ...txEntries(1000n, 6, 20) }] })
    s = await reopen()
    await s.commit({ durableLsn: lsn(2001n), appends: [{ shapeId: id, ...txEntries(2000n, 2, 20) }] })
    expect(s.chunkEndAfter(id, off('0_0'))).toEqual(off('1000_4'))
    expect(s.chunkEndAfter(id, off('1000_4'))).toBeUndefined()
    await s.commit({ durableLsn: lsn(3001n), appends: [{ shapeId: id, ...txEntries(3000n, 2, 20) }] })
    expect(s.chunkEndAfter(id, off('1000_4'))).toEqual(off('3000_1'))
  })

  it('appends to several shapes in one batch, each with its own chunking', async () => {
    const s = open()
    const a = await readyShape(s, ITEMS)
    const b = await readyShape(s, OTHER)
    await s.commit({
      durableLsn: lsn(1000n),
      appends: [
        { shapeId: a, ...txEntries(1000n, 5, 20) },
        { shapeId: b, ...txEntries(1000n, 1, 20) },
      ],
    })
    expect(s.chunkEndAfter(a, off('0_inf'))).toEqual(off('1000_4'))
    expect(s.chunkEndAfter(b, off('0_inf'))).toBeUndefined()
    expect(s.chunkEndAfter(b, off('0_0'))).toBeUndefined()
    expect(names(s.read(b, off('0_inf'), off('1000_4')))).toEqual(['1000_0'])
  })

  it('ignores appends for unknown shapes and empty appends', async () => {
    const s = open()
    const id = await readyShape(s)
    await s.commit({
      durableLsn: lsn(7n),
      appends: [
        { shapeId: 999, ...txEntries(7n, 2, 20) },
        { shapeId: id, tx: lsn(7n), firstOp: 0, entries: [] },
      ],
    })
    expect(s.committedLsn).toBe(7n)
    expect(s.head(999)).toBeUndefined()
    expect(s.read(999, off('-1'), off('7_1'))).toEqual([])
    expect(s.head(id)).toEqual(off('0_0'))
  })


  it('fails every commit once the store is closed, and never counts one as durable', async () => {
    const s = open()
    await s.close()
    await expect(s.commit({ durableLsn: lsn(100n), appends: [] })).rejects.toThrow()
    // A later batch must not join a group whose transaction was never queued.
    await expect(s.commit({ durableLsn: lsn(200n), appends: [] })).rejects.toThrow()
    expect(s.durableLsn).toBe(0n)
    store = undefined
  })

  it('stores entries as UTF-8, whatever their size, and counts their bytes for chunks', async () => {
    const s = open()
    const id = await readyShape(s)
    // Two bytes per character: too large for the 64 KiB buffer the store reuses for entries.
    const large = 'é'.repeat(40_000)
    const entries = ['ü', large, 'x']
    await s.commit({ durableLsn: lsn(11n), appends: [{ shapeId: id, tx: lsn(10n), firstOp: 3, entries }] })
    expect(s.read(id, off('0_inf'), off('10_5')).map((b) => b.toString('utf8'))).toEqual(entries)
    expect(s.head(id)).toEqual(off('10_5'))
    // Over the 100-byte limit at the large entry: it closes the chunk.
    expect(s.chunkEndAfter(id, off('0_inf'))).toEqual(off('10_4'))
  })
  it('chunks log entries written during the snapshot apart from it', async () => {
    const s = open()
    const { id } = await s.createShape(ITEMS, definitionKey(ITEMS))
    await s.appendSnapshotRows(id, rows(0, 1, 10))
    await s.commit({ durableLsn: lsn(1000n), appends: [{ shapeId: id, ...txEntries(1000n, 5, 20) }] })
    expect(s.chunkEndAfter(id, off('-1'))).toBeUndefined()
    await s.appendSnapshotRows(id, rows(1, 1, 10))
    await s.finishSnapshot(id, Buffer.from('end'), SNAPSHOT)
    expect(s.chunkEndAfter(id, off('-1'))).toEqual(off('0_0'))
    expect(names(s.read(id, off('-1'), off('0_0')))).toEqual(['r0', 'r1', 'end'])
    expect(s.head(id)).toEqual(off('1000_4'))
    expect(s.chunkEndAfter(id, off('0_0'))).toEqual(off('1000_4'))
  })
})

describe('read', () => {
  let s: ShapeLogStore
  let id: number

  beforeEach(async () => {
    s = open()
    id = await s.createShape(ITEMS, definitionKey(ITEMS)).then((shape) => shape.id)
    await s.appendSnapshotRows(id, rows(0, 3, 10))
    await s.finishSnapshot(id, Buffer.from('end'), SNAPSHOT)
    await s.commit({
      durableLsn: lsn(2000n),
      appends: [{ shapeId: id, ...txEntries(1000n, 3, 5) }],
    })
    await s.commit({ durableLsn: lsn(3000n), appends: [{ shapeId: id, ...txEntries(2000n, 2, 5) }] })
  })

  it.each([
    ['-1', '0_0', ['r0', 'r1', 'r2', 'end']],
    ['-1', '0_inf', ['r0', 'r1', 'r2', 'end']],
    ['0_0', '0_0', []],
    ['0_inf', '2000_1', ['1000_0', '1000_1', '1000_2', '2000_0', '2000_1']],
    ['0_0', '2000_1', ['1000_0', '1000_1', '1000_2', '2000_0', '2000_1']],
    ['1000_0', '1000_2', ['1000_1', '1000_2']],
    ['1000_1', '2000_0', ['1000_2', '2000_0']],
    ['1000_2', '2000_1', ['2000_0', '2000_1']],
    ['1000_inf', '2000_inf', ['2000_0', '2000_1']],
    ['0_inf', '1500_0', ['1000_0', '1000_1', '1000_2']],
    ['2000_1', '9999_0', []],
    ['-1', '18446744073709551615_4294967294', ['r0', 'r1', 'r2', 'end', '1000_0', '1000_1', '1000_2', '2000_0', '2000_1']],
  ])('returns exactly the entries in (%s, %s]', (after, upTo, expected) => {
    expect(names(s.read(id, off(after), off(upTo)))).toEqual(expected)
  })

  it('returns stored bytes unchanged', () => {
    expect(s.read(id, off('0_inf'), off('1000_0'))).toEqual([Buffer.from('1000_0')])
    expect(s.read(id, off('-1'), off('0_0')).at(-1)).toEqual(Buffer.from('end'))
  })

  it('reports the head of the log', () => {
    expect(formatOffset(s.head(id)!)).toBe('2000_1')
  })
})

describe('deleteShape', () => {
  it('removes the shape, its entries and boundaries, and keeps other shapes', async () => {
    let s = open()
    const keep = await readyShape(s, ITEMS)
    const { id: gone } = await s.createShape(OTHER, definitionKey(OTHER))
    await s.appendSnapshotRows(gone, rows(0, 6, 30))
    await s.finishSnapshot(gone, Buffer.from('end'), SNAPSHOT)
    await s.commit({
      durableLsn: lsn(1001n),
      appends: [
        { shapeId: keep, ...txEntries(1000n, 1, 5) },
        { shapeId: gone, ...txEntries(1000n, 5, 20) },
      ],
    })
    expect(s.chunkEndAfter(gone, off('-1'))).toEqual(off('0_0'))
    expect(s.chunkEndAfter(gone, off('0_1'))).toEqual(off('1000_4'))

    await s.deleteShape(gone)

    expect(s.getShape(gone)).toBeUndefined()
    expect(s.shapes().map((shape) => shape.id)).toEqual([keep])
    expect(s.read(gone, off('-1'), off('18446744073709551615_0'))).toEqual([])
    expect(s.head(gone)).toBeUndefined()
    expect(s.chunkEndAfter(gone, off('-1'))).toBeUndefined()
    expect(names(s.read(keep, off('-1'), off('1000_0')))).toEqual(['r0', 'r1', 'end', '1000_0'])

    s = await reopen()
    expect(s.getShape(gone)).toBeUndefined()
    expect(s.read(gone, off('-1'), off('18446744073709551615_0'))).toEqual([])
    expect(s.chunkEndAfter(gone, off('-1'))).toBeUndefined()
    expect(s.head(keep)).toEqual(off('1000_0'))
  })

  it('drops appends to a deleted shape', async () => {
    const s = open()
    const id = await readyShape(s)
    await s.deleteShape(id)
    await s.commit({ durableLsn: lsn(5n), appends: [{ shapeId: id, ...txEntries(5n, 1, 5) }] })
    expect(s.read(id, off('-1'), off('5_0'))).toEqual([])
  })
})

describe('neighbouring shapes', () => {
  // Shape 2's first key, (2, 0_0), is exactly shapeKeyRange(1).end. LMDB includes `start` in a
  // reverse range, so reverse scans that start at that key see shape 2's first row.
  it('head of shape 1 ignores shape 2 (reverse scan must not include the next shape key)', async () => {
    const s = open()
    const one = await readyShape(s, ITEMS)
    const two = await readyShape(s, OTHER)
    expect([one, two]).toEqual([1, 2])
    await s.commit({ durableLsn: lsn(1000n), appends: [{ shapeId: one, ...txEntries(1000n, 2, 5) }] })
    expect(s.head(one)).toEqual(off('1000_1')) // actual: { tx: 0n, op: 0 } — shape 2's 0_0
  })

  it('control: head of the last shape is right', async () => {
    const s = open()
    await readyShape(s, ITEMS)
    const two = await readyShape(s, OTHER)
    await s.commit({ durableLsn: lsn(1000n), appends: [{ shapeId: two, ...txEntries(1000n, 2, 5) }] })
    expect(s.head(two)).toEqual(off('1000_1'))
  })

  it('chunk bytes of shape 1 ignore a boundary at shape 2 0_0', async () => {
    const s = open()
    const { id: one } = await s.createShape(ITEMS, definitionKey(ITEMS))
    const { id: two } = await s.createShape(OTHER, definitionKey(OTHER))
    await s.appendSnapshotRows(two, [value('wide row', 150)]) // boundary at (2, 0_0)
    await s.appendSnapshotRows(one, rows(0, 3, 30)) // 93 bytes, no boundary
    await s.finishSnapshot(one, value('end', 30), SNAPSHOT) // boundary at (1, 0_inf): next chunk starts empty
    await s.commit({ durableLsn: lsn(1000n), appends: [{ shapeId: one, ...txEntries(1000n, 1, 20) }] })
    // 21 bytes after 0_inf: the chunk is still open. Actual: closed at 1000_0, because the count
    // started at (1, 0_1) after finding shape 2's boundary (2, 0_0) and included 0_1, 0_2 and
    // 0_inf (31 + 31 + 31 + 21 = 114 bytes).
    expect(s.chunkEndAfter(one, off('0_inf'))).toBeUndefined()
  })

  it('control: without a neighbour the same steps leave the chunk open', async () => {
    const s = open()
    const { id: one } = await s.createShape(ITEMS, definitionKey(ITEMS))
    await s.appendSnapshotRows(one, rows(0, 3, 30))
    await s.finishSnapshot(one, value('end', 30), SNAPSHOT)
    await s.commit({ durableLsn: lsn(1000n), appends: [{ shapeId: one, ...txEntries(1000n, 1, 20) }] })
    expect(s.chunkEndAfter(one, off('0_inf'))).toBeUndefined()
  })

  // The other end of the same reverse range is exclusive, so a shape's own first key is missed.
  it('head of a shape whose only log entry is its first key is that entry', async () => {
    const s = open()
    const { id } = await s.createShape(ITEMS, definitionKey(ITEMS))
    await s.commit({ durableLsn: lsn(2n), appends: [{ shapeId: id, tx: lsn(1n), firstOp: 0, entries: ['only'] }] })
    expect((await reopen()).head(id)).toEqual(off('1_0'))
  })
})

describe('reopen after a crash', () => {
  it('drops entries staged by a transaction that never committed and takes the head from what is left', async () => {
    let s = open()
    const id = await readyShape(s)
    await s.commit({ durableLsn: lsn(1001n), appends: [{ shapeId: id, ...txEntries(1000n, 2, 5) }] })
    // A large transaction written as it arrives; the process dies before its commit.
    await s.stage([{ shapeId: id, ...txEntries(2000n, 3, 5) }])
    s = await reopen()
    expect(s.head(id)).toEqual(off('1000_1'))
    expect(names(s.read(id, off('0_inf'), off('18446744073709551615_0')))).toEqual(['1000_0', '1000_1'])
    // The replay writes the transaction again, whole.
    await s.commit({ durableLsn: lsn(2001n), appends: [{ shapeId: id, ...txEntries(2000n, 3, 5) }] })
    expect(names(s.read(id, off('1000_1'), off('2000_2')))).toEqual(['2000_0', '2000_1', '2000_2'])
  })

  it('drops the boundaries a staged transaction wrote, and its replay puts them back where they were', async () => {
    const chunkEnds = (s: ShapeLogStore, id: number): string[] => {
      const ends: string[] = []
      for (let after: Offset | undefined = off('0_0'); (after = s.chunkEndAfter(id, after)); ) ends.push(formatOffset(after))
      return ends
    }
    let s = open()
    const id = await readyShape(s)
    await s.commit({ durableLsn: lsn(1001n), appends: [{ shapeId: id, ...txEntries(1000n, 2, 20) }] })
    await s.stage([{ shapeId: id, ...txEntries(2000n, 9, 20) }])
    s = await reopen()
    // The replay's commit carries the whole transaction.
    await s.commit({ durableLsn: lsn(2001n), appends: [{ shapeId: id, ...txEntries(2000n, 12, 20) }] })
    const replayed = chunkEnds(s, id)

    await store?.close()
    await rm(dir, { recursive: true, force: true })
    dir = await mkdtemp(join(tmpdir(), 'sluice-unit-store-'))
    s = open()
    const again = await readyShape(s)
    await s.commit({ durableLsn: lsn(1001n), appends: [{ shapeId: again, ...txEntries(1000n, 2, 20) }] })
    await s.commit({ durableLsn: lsn(2001n), appends: [{ shapeId: again, ...txEntries(2000n, 12, 20) }] })
    expect(replayed).toEqual(['2000_2', '2000_7'])
    expect(chunkEnds(s, again)).toEqual(replayed)
  })
})

describe('chunk boundaries after a snapshot ends', () => {
  /** Every chunk end from the start. */
  const chunkEnds = (s: ShapeLogStore, id: number): string[] => {
    const ends: string[] = []
    for (let after: Offset | undefined = off('-1'); (after = s.chunkEndAfter(id, after)); ) ends.push(formatOffset(after))
    return ends
  }
  const bigTx = (id: number, tx: bigint) => ({ durableLsn: lsn(tx + 5n), appends: [{ shapeId: id, ...txEntries(tx, 1, 40) }] })

  async function run(reopenAfterFinish: boolean): Promise<string[]> {
    await store?.close()
    await rm(dir, { recursive: true, force: true })
    dir = await mkdtemp(join(tmpdir(), 'sluice-unit-store-'))
    let s = open()
    const { id } = await s.createShape(ITEMS, definitionKey(ITEMS))
    await s.appendSnapshotRows(id, rows(0, 1, 10))
    // A log commit queued just before the snapshot's end runs in the same LMDB transaction.
    const commit = s.commit(bigTx(id, 100n))
    const finish = s.finishSnapshot(id, Buffer.from('end'), SNAPSHOT)
    await commit
    await finish
    if (reopenAfterFinish) s = await reopen()
    for (let tx = 200n; tx <= 600n; tx += 100n) await s.commit(bigTx(id, tx))
    return chunkEnds(s, id)
  }

  it('are the same whether or not the process restarted (a restart replays into the same chunks)', async () => {
    const continuous = await run(false)
    expect(continuous.length).toBeGreaterThan(2)
    expect(await run(true)).toEqual(continuous)
  })
})

describe('snapshot blocks', () => {
  /** 300 rows of 1,000 bytes in three batches: several 64 KiB blocks, chunks of 100 KB. */
  async function bigSnapshot(): Promise<{ s: ShapeLogStore; id: number }> {
    await store?.close()
    store = ShapeLogStore.open(dir, { chunkBytes: 100_000 })
    const s = store
    const { id } = await s.createShape(ITEMS, definitionKey(ITEMS))
    await s.appendSnapshotRows(id, rows(0, 70, 1_000))
    await s.appendSnapshotRows(id, rows(70, 150, 1_000))
    await s.appendSnapshotRows(id, rows(220, 80, 1_000))
    await s.finishSnapshot(id, Buffer.from('end'), SNAPSHOT)
    return { s, id }
  }
  const all = [...Array.from({ length: 300 }, (_, i) => `r${i}`), 'end']

  it('reads whole chunks of rows across blocks, as rows and as joinable parts', async () => {
    const { s, id } = await bigSnapshot()
    // 1,001 bytes per row: chunks close after rows 99, 199 and 299; the end message is chunk 3.
    const ends: string[] = []
    for (let after: Offset | undefined = off('-1'); (after = s.chunkEndAfter(id, after)); ) ends.push(formatOffset(after))
    expect(ends).toEqual(['0_0', '0_1', '0_2', '0_3'])
    const cuts = ['-1', '0_0', '0_1', '0_2', '0_3']
    const rowsOf = [all.slice(0, 100), all.slice(100, 200), all.slice(200, 300), ['end']]
    for (let i = 0; i < 4; i++) {
      const [after, upTo] = [off(cuts[i]!), off(cuts[i + 1]!)]
      expect(names(s.read(id, after, upTo))).toEqual(rowsOf[i])
      const parts = s.readJoinable(id, after, upTo)
      expect(parts.length).toBeLessThan(5)
      expect(Buffer.concat(parts.flatMap((p, j) => (j > 0 ? [Buffer.from(','), p] : [p]))).toString()).toBe(s.read(id, after, upTo).map(String).join(','))
    }
    expect(names(s.read(id, off('0_0'), off('0_2')))).toEqual(all.slice(100, 300))
  })

  it('counts the log from its own start after reopen', async () => {
    const { id } = await bigSnapshot()
    const s = await reopen()
    expect(s.head(id)).toEqual(off('0_3'))
    await s.commit({ durableLsn: lsn(1000n), appends: [{ shapeId: id, ...txEntries(1000n, 1, 20) }] })
    expect(s.chunkEndAfter(id, off('0_3'))).toBeUndefined()
    expect(names(s.read(id, off('0_2'), off('1000_0')))).toEqual(['end', '1000_0'])
  })

  it('drops shapes stored in an older layout', async () => {
    const s = open()
    await readyShape(s)
    await s.close()
    store = undefined
    const { open: openLmdb } = await import('lmdb')
    const raw = openLmdb({ path: join(dir, 'shapes.lmdb'), maxDbs: 8 })
    await raw.openDB({ name: 'meta', encoding: 'string' }).put('format', '2')
    await raw.close()
    const upgraded = open()
    expect(upgraded.droppedOldFormatShapes).toBe(1)
    expect(upgraded.shapes()).toEqual([])
    expect((await reopen()).droppedOldFormatShapes).toBe(0)
  })
})

describe('files', () => {
  it('keeps everything under the given directory', async () => {
    const s = open()
    await readyShape(s)
    expect((await readdir(dir)).some((name) => name.startsWith('shapes.lmdb'))).toBe(true)
  })
})

describe('reopen', () => {
  /** Every chunk end of the shape's log from its start, then its head. */
  const chunkEnds = (s: ShapeLogStore, id: number): string[] => {
    const ends: string[] = []
    for (let end = s.chunkEndAfter(id, off('0_inf')); end; end = s.chunkEndAfter(id, end)) ends.push(formatOffset(end))
    const head = s.head(id)
    return [...ends, `head ${head ? formatOffset(head) : 'none'}`]
  }

  // Short logs are found again in one pass over every key, long ones with cursors per shape
  // (log-recovery.ts): either way, each log continues as if the store had never closed.
  it.each([
    ['short logs, one pass over all keys', 2],
    ['long logs, cursors per shape', 40],
  ])('finds each log\'s head and open chunk again (%s)', async (_, perTx) => {
    const twinDir = await mkdtemp(join(tmpdir(), 'sluice-unit-store-'))
    const twin = ShapeLogStore.open(twinDir, { chunkBytes: CHUNK_BYTES })
    try {
      let s = open()
      const steps = async (run: (store: ShapeLogStore) => Promise<void>) => {
        await run(s)
        await run(twin)
      }
      const ids: number[] = []
      await steps(async (store) => {
        ids.push(await readyShape(store), await readyShape(store, OTHER), await readyShape(store), (await store.createShape(ITEMS, definitionKey(ITEMS))).id)
      })
      // At the reopen shape 1 has crossed boundaries and ends in an open chunk, shape 2 ends exactly on
      // a boundary, shape 3 has no log and shape 4 no snapshot.
      const batch = (tx: bigint, sizes: readonly [number, number]) => ({
        durableLsn: lsn(tx + 1n),
        appends: [
          { shapeId: 1, ...txEntries(tx, perTx, sizes[0]) },
          { shapeId: 2, ...txEntries(tx, 1, sizes[1]) },
        ],
      })
      await steps(async (store) => void (await store.commit(batch(1000n, [13, CHUNK_BYTES]))))
      await steps(async (store) => void (await store.commit(batch(2000n, [7, CHUNK_BYTES]))))
      s = await reopen()
      await steps(async (store) => void (await store.commit(batch(3000n, [11, 40]))))
      await steps(async (store) => void (await store.commit(batch(4000n, [17, 50]))))
      for (const id of ids) expect(chunkEnds(s, id)).toEqual(chunkEnds(twin, id))
      expect(chunkEnds(s, 2)).toContain('2000_0')
    } finally {
      await twin.close()
      await rm(twinDir, { recursive: true, force: true })
    }
  })
})
