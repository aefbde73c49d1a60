/**
 * What a shared snapshot's queries are (`shapes/snapshot-plan.ts`, docs/ARCHITECTURE.md I30):
 * which shapes may share a `col = ANY(…)` branch, how rows find their shapes, and the packs
 * shapes are read in, smallest first.
 */
import { describe, expect, it } from 'vitest'
import type { TableInfo } from '../../src/pg/introspect.js'
import { column, itemsTable } from '../support/catalog-table.js'
import { countSql, equalityRowsOf, packQuery, packsOf, PACK_ROWS, type PlannedShape } from '../../src/shapes/snapshot-plan.js'
import { compileWhere } from '../../src/shapes/where/compile-where.js'

const TABLE: TableInfo = itemsTable([column('id', 'int8'), column('team', 'int4'), column('owner', 'text'), column('uid', 'uuid'), column('price', 'numeric'), column('done', 'bool')])

const equality = (where: string, table: TableInfo = TABLE) => equalityRowsOf(compileWhere(where, () => undefined, TABLE), table)

const shape = (where: string, table: TableInfo = TABLE): PlannedShape => {
  const compiled = compileWhere(where, () => undefined, TABLE)
  const rows = equalityRowsOf(compiled, table)
  return { table, whereSql: compiled.sql, ...(rows && { equality: rows }) }
}

describe('equalityRowsOf', () => {
  it('takes clauses that are only `col = c` or `col IN (…)` on an integer, text or uuid column', () => {
    expect(equality('team = 5')).toEqual({ column: 'team', arrayType: 'int8', values: ['5'] })
    expect(equality('5 = team')).toEqual({ column: 'team', arrayType: 'int8', values: ['5'] })
    expect(equality('team IN (1, 2, 2, NULL)')).toEqual({ column: 'team', arrayType: 'int8', values: ['1', '2'] })
    expect(equality(`owner IN ('a,b', '')`)).toEqual({ column: 'owner', arrayType: 'text', values: ['a,b', ''] })
    expect(equality(`uid = 'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11'`)).toEqual({ column: 'uid', arrayType: 'uuid', values: ['a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'] })
  })

  it('leaves out integer values no row of the column can have', () => {
    expect(equality('team IN (1.5, 3.0, 99999999999999999999)')).toEqual({ column: 'team', arrayType: 'int8', values: ['3'] })
  })

  it('refuses the rest: more than the index, other types, keyless tables', () => {
    expect(equality('team = 5 AND owner IS NOT NULL')).toBeUndefined()
    expect(equality('team NOT IN (5)')).toBeUndefined()
    expect(equality('price = 5')).toBeUndefined()
    expect(equality('done = true')).toBeUndefined()
    expect(equality('team = 5', { ...TABLE, identity: { source: 'all-columns' } })).toBeUndefined()
  })
})

describe('a pack query', () => {
  const shapes = [shape('team = 1'), shape('team IN (1, 2)'), shape('team = 2 AND owner IS NOT NULL'), shape('team = 3', { ...TABLE, columns: TABLE.columns.slice(0, 2) }), shape(`owner = 'x'`)]

  it('has one `= ANY` branch per column and column list, and one per other shape', () => {
    const { sql } = packQuery(shapes, [0, 1, 2, 3, 4])
    expect(sql.match(/ = ANY\(/g)).toHaveLength(3)
    expect(sql).toContain(`"team" = ANY(ARRAY['1','2']::int8[])`)
    expect(sql).toContain(`"team" = ANY(ARRAY['3']::int8[])`)
    expect(sql).toContain(`"owner" = ANY(ARRAY['x']::text[])`)
    expect(sql.split(' UNION ALL ')).toHaveLength(4)
  })

  it('hands a row to every shape that asked for its value, and a branch of one shape its rows', () => {
    const query = packQuery(shapes, [0, 1, 2, 3, 4])
    expect(query.shapesOf(0, Buffer.from('1'))).toEqual([0, 1])
    expect(query.shapesOf(0, Buffer.from('2'))).toEqual([1])
    expect(query.shapesOf(0, Buffer.from('7'))).toEqual([])
    expect(query.shapesOf(1, Buffer.from(''))).toEqual([2])
    expect(query.shapesOf(2, Buffer.from('3'))).toEqual([3])
    expect(query.shapesOf(3, Buffer.from('x'))).toEqual([4])
  })

  it('counts by branch and value, no further than one row past a pack', () => {
    const sql = countSql(shapes, [0, 1, 2])
    expect(sql.split(' UNION ALL ')).toHaveLength(2)
    expect(sql).toContain(`WHERE "team" = v LIMIT ${PACK_ROWS + 1}) c)::text AS rows FROM unnest(ARRAY['1','2']::int8[]) v`)
    expect(sql).toContain(`LIMIT ${PACK_ROWS + 1}) c)::text AS rows)`)
  })
})

describe('packs', () => {
  it('go smallest first, a shape larger than a pack alone and last', () => {
    const shapes = [shape('team = 0'), shape('team = 1'), shape('team IN (1, 2)'), shape('team = 2 AND owner IS NOT NULL')]
    const counts = [
      { branch: 0, value: '0', rows: String(PACK_ROWS + 1) },
      { branch: 0, value: '1', rows: '3' },
      { branch: 0, value: '2', rows: String(PACK_ROWS - 5) },
      { branch: 1, value: '', rows: '4' },
    ]
    // Sizes: 0 → PACK_ROWS + 1, 1 → 3, 2 → PACK_ROWS - 2, 3 → 4.
    expect(packsOf(shapes, [0, 1, 2, 3], counts)).toEqual([[1, 3], [2], [0]])
  })

  it('are one for shapes that fit', () => {
    const shapes = [shape('team = 0'), shape('team = 1')]
    expect(packsOf(shapes, [0, 1], [{ branch: 0, value: '1', rows: '3' }])).toEqual([[0, 1]])
  })
})
