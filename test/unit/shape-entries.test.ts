/**
 * One shape's entries of one transaction (`shape-entries.ts`): what a change is to a shape
 * (another table's is nothing, a TRUNCATE of its own ends it), op numbering across staging, and
 * the `last` mark — the same for a streamed transaction and a held one released at once.
 */
import { describe, expect, it } from 'vitest'
import { lsn } from '../../src/pg/lsn.js'
import type { Change, Relation, Transaction } from '../../src/replication/transaction.js'
import { entriesOf, ShapeEntries, TRUNCATED } from '../../src/shapes/shape-entries.js'
import { compileWhere } from '../../src/shapes/where/compile-where.js'
import { ITEMS_TABLE, itemsRelation, liveShape } from '../support/items-table.js'

const ITEMS = itemsRelation('d')
const OTHER: Relation = { ...ITEMS, oid: 2, name: 'other' }
const insert = (id: string, relation = ITEMS): Change => ({ kind: 'insert', relation, record: [id] })
const TX = { xid: 7, commitLsn: lsn(1000n) }

const parsed = (entries: readonly string[]) => entries.map((entry) => JSON.parse(entry) as { key: string; headers: { op_position: number; last?: true } })

describe('ShapeEntries', () => {
  it('encodes its table\'s changes, nothing of another table, and marks the last entry', () => {
    const entries = new ShapeEntries(liveShape(1), TX)
    expect(entries.add(insert('1'), 0)).toBe(0)
    expect(entries.add(insert('9', OTHER), 1)).toBe(0)
    expect(entries.add(insert('2'), 2)).toBe(1)
    const append = entries.finish()!
    expect(append).toMatchObject({ shapeId: 1, tx: 1000n, firstOp: 0 })
    expect(parsed(append.entries).map((e) => [e.key, e.headers.op_position, e.headers.last])).toEqual([
      ['"public"."items"/"1"', 0, undefined],
      ['"public"."items"/"2"', 2, true],
    ])
  })

  it('answers TRUNCATED for a TRUNCATE of its table, and nothing for one of another table', () => {
    const entries = new ShapeEntries(liveShape(1), TX)
    expect(entries.add({ kind: 'truncate', relations: [OTHER] }, 0)).toBe(0)
    expect(entries.add({ kind: 'truncate', relations: [OTHER, ITEMS] }, 1)).toBe(TRUNCATED)
  })

  it('keeps ops consecutive across staging, holding the last entry back for its mark', () => {
    const entries = new ShapeEntries(liveShape(1), TX)
    for (let i = 0; i < 3; i++) entries.add(insert(String(i)), i)
    const staged = entries.take()!
    expect(staged.firstOp).toBe(0)
    expect(staged.entries).toHaveLength(2)
    expect(entries.take()).toBeUndefined()
    entries.add(insert('3'), 3)
    const rest = entries.finish()!
    expect(rest.firstOp).toBe(2)
    expect(parsed(rest.entries).map((e) => [e.headers.op_position, e.headers.last])).toEqual([[2, undefined], [3, true]])
  })

  it('applies the shape\'s where, and has no entries when nothing matches', () => {
    const where = compileWhere('id > $1', () => '5', ITEMS_TABLE)
    expect(entriesOf(liveShape(1, ITEMS_TABLE, where), { ...TX, endLsn: lsn(1001n), changes: [insert('1'), insert('2')] })).toBeUndefined()
    const append = entriesOf(liveShape(1, ITEMS_TABLE, where), { ...TX, endLsn: lsn(1001n), changes: [insert('1'), insert('6')] })
    expect(append === TRUNCATED ? [] : parsed(append!.entries).map((e) => e.key)).toEqual(['"public"."items"/"6"'])
  })

  it('gives a whole held transaction the entries it gets streamed', () => {
    const tx: Transaction = { ...TX, endLsn: lsn(1001n), changes: [insert('1'), insert('8', OTHER), insert('2'), { kind: 'delete', relation: ITEMS, old: ['1'] }] }
    const streamed = new ShapeEntries(liveShape(1), tx)
    tx.changes.forEach((change, position) => streamed.add(change, position))
    expect(entriesOf(liveShape(1), tx)).toEqual(streamed.finish())
    expect(entriesOf(liveShape(1), { ...tx, changes: [insert('1'), { kind: 'truncate', relations: [ITEMS] }] })).toBe(TRUNCATED)
  })
})
