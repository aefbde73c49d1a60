/**
 * Shape records name their table's description, stored once (docs/ARCHITECTURE.md I33), and
 * records written before that, each with its own copy of its table, are still read.
 */
import { open as openLmdb } from 'lmdb'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import type { TableInfo } from '../../src/pg/introspect.js'
import { definitionKey, type ShapeDefinition } from '../../src/shapes/shape-definition.js'
import { ShapeLogStore, type SnapshotInfo } from '../../src/storage/shape-log-store.js'
import { column, itemsTable } from '../support/catalog-table.js'

const ITEMS: ShapeDefinition = { table: { schema: 'public', name: 'items' }, replica: 'default', log: 'full' }
// As JSON has it (no undefined fields), to compare with what is read back.
const TABLE = JSON.parse(JSON.stringify(itemsTable([column('id', 'int8'), column('user_id', 'int4'), column('title', 'text')]))) as TableInfo
const NARROWED: TableInfo = { ...TABLE, columns: TABLE.columns.slice(0, 2) }
const SNAPSHOT: SnapshotInfo = { xmin: '100', xmax: '105', xip: [] }

const perUser = (user: number): ShapeDefinition => ({ ...ITEMS, where: `("user_id" = ${user})` })

let dir: string
let store: ShapeLogStore | undefined

const openStore = (): ShapeLogStore => (store = ShapeLogStore.open(dir, { chunkBytes: 1_000 }))

async function reopen(): Promise<ShapeLogStore> {
  await store?.close()
  return openStore()
}

/** The environment's raw databases, with the store closed. */
async function withRaw<T>(use: (dbs: { shapes: ReturnType<typeof rawDb>; tables: ReturnType<typeof rawDb> }) => Promise<T>): Promise<T> {
  await store?.close()
  store = undefined
  const root = openLmdb({ path: join(dir, 'shapes.lmdb'), maxDbs: 8 })
  try {
    return await use({ shapes: rawDb(root, 'shapes', 'uint32'), tables: rawDb(root, 'tables') })
  } finally {
    await root.close()
  }
}

function rawDb(root: ReturnType<typeof openLmdb>, name: string, keyEncoding?: 'uint32') {
  return root.openDB<Record<string, unknown>, string | number>({ name, encoding: 'json', ...(keyEncoding ? { keyEncoding } : {}) })
}

/**
 * A record as Sluice wrote it before descriptions were stored apart: the table inline. Kept here
 * only, to write a data directory as an older Sluice left it.
 */
function oldRecord(record: Record<string, unknown>, tables: ReturnType<typeof rawDb>): Record<string, unknown> {
  const { tableKey, ...rest } = record
  return tableKey === undefined ? rest : { ...rest, table: tables.get(tableKey as string) }
}

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sluice-unit-records-'))
})

afterEach(async () => {
  await store?.close()
  store = undefined
  await rm(dir, { recursive: true, force: true })
})

describe('table descriptions (docs/ARCHITECTURE.md I33)', () => {
  it('are stored once for every record of a table, and records name them', async () => {
    const s = openStore()
    const created = await Promise.all(Array.from({ length: 50 }, (_, user) => s.createShape(perUser(user), definitionKey(perUser(user)), ['id'], TABLE)))
    const narrowed = await s.createShape({ ...ITEMS, columns: ['id', 'user_id'] }, 'narrowed', ['id'], { ...NARROWED })
    await s.finishSnapshot(created[0]!.id, Buffer.from('{}'), SNAPSHOT)
    expect(s.getShape(created[0]!.id)).toMatchObject({ status: 'ready', table: TABLE })
    const raw = await withRaw(async ({ shapes, tables }) => ({
      keys: [...tables.getKeys()],
      records: [...shapes.getRange()].map(({ value }) => value),
    }))
    expect(raw.keys).toHaveLength(2)
    expect(raw.keys.every((key) => String(key).startsWith(`${TABLE.oid}:`))).toBe(true)
    for (const record of raw.records) {
      expect(record).not.toHaveProperty('table')
      expect(raw.keys).toContain(record['tableKey'])
    }
    const reopened = await reopen()
    const expected = [...created.map((shape, i) => (i === 0 ? { ...shape, status: 'ready', snapshot: SNAPSHOT, lastSnapshotChunk: 0 } : shape)), narrowed]
    const recovered = reopened.recoveredShapes()
    expect(recovered).toEqual(expected)
    expect(reopened.shapes()).toEqual(expected)
    // Read back, the records of a table share one description.
    expect(new Set(recovered.slice(0, 50).map((shape) => shape.table)).size).toBe(1)
  })

  it('of tables whose shapes are all gone are removed at the next open', async () => {
    const s = openStore()
    const kept = await s.createShape(ITEMS, 'kept', ['id'], TABLE)
    const gone = await s.createShape({ ...ITEMS, columns: ['id', 'user_id'] }, 'gone', ['id'], NARROWED)
    await s.deleteShape(gone.id)
    await reopen()
    expect(await withRaw(async ({ tables }) => [...tables.getKeys()])).toHaveLength(1)
    expect(openStore().getShape(kept.id)).toEqual(kept)
  })

  it('leave records written with their table inline readable, and a new record of that table stores it once', async () => {
    const s = openStore()
    const created = await Promise.all([1, 2, 3].map((user) => s.createShape(perUser(user), definitionKey(perUser(user)), ['id'], TABLE)))
    await s.finishSnapshot(created[1]!.id, Buffer.from('{}'), SNAPSHOT)
    await withRaw(async ({ shapes, tables }) => {
      for (const { key, value } of [...shapes.getRange()]) await shapes.put(key, oldRecord(value, tables))
      for (const key of [...tables.getKeys()]) await tables.remove(key)
    })
    const reopened = openStore()
    expect(reopened.shapes()).toEqual(created.map((shape, i) => (i === 1 ? { ...shape, status: 'ready', snapshot: SNAPSHOT, lastSnapshotChunk: 0 } : shape)))
    expect(reopened.recoveredShapes().map((shape) => shape.table)).toEqual([TABLE, TABLE, TABLE])
    const added = await reopened.createShape(perUser(4), definitionKey(perUser(4)), ['id'], TABLE)
    expect((await reopen()).getShape(added.id)).toEqual(added)
    expect(store!.getShape(created[1]!.id)).toMatchObject({ status: 'ready', table: TABLE })
    expect(await withRaw(async ({ tables }) => [...tables.getKeys()])).toHaveLength(1)
  })
})
