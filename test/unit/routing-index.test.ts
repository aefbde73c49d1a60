import { describe, expect, it } from 'vitest'
import { UNCHANGED_TOAST } from '../../src/replication/pgoutput-messages.js'
import { RoutingIndex } from '../../src/shapes/routing-index.js'
import { compileWhere } from '../../src/shapes/where/compile-where.js'
import { relationOf, tableInfo } from '../support/table-info.js'

const TABLE = tableInfo('items', [
  { name: 'id', typeOid: 23, typeName: 'int4', dims: 0, notNull: true, pkIndex: 0 },
  { name: 'owner', typeOid: 25, typeName: 'text', dims: 0, notNull: false, pkIndex: undefined },
])
const RELATION = relationOf(TABLE)
const indexOf = (where: string) => compileWhere(where, () => undefined, TABLE).equalityIndex

describe('RoutingIndex', () => {
  const index = new RoutingIndex<string>()
  index.add('alice', 'public', 'items', indexOf(`owner = 'alice'`))
  index.add('alice-or-bob', 'public', 'items', indexOf(`owner IN ('alice', 'bob') AND id > 0`))
  index.add('small-ids', 'public', 'items', indexOf(`id < 10`))
  index.add('other-table', 'public', 'other', undefined)

  const candidates = (record: (string | null | typeof UNCHANGED_TOAST)[] | undefined, old?: (string | null)[]) =>
    [...index.candidates(RELATION, record, old)].sort()

  it('finds equality shapes by the new and the old value, and always the scanned ones', () => {
    expect(candidates(['1', 'alice'])).toEqual(['alice', 'alice-or-bob', 'small-ids'])
    expect(candidates(['1', 'bob'])).toEqual(['alice-or-bob', 'small-ids'])
    expect(candidates(['1', 'carol'])).toEqual(['small-ids'])
    // Moving out of a shape must still reach it: the old value finds it.
    expect(candidates(['1', 'carol'], ['1', 'alice'])).toEqual(['alice', 'alice-or-bob', 'small-ids'])
    expect(candidates(undefined, ['1', 'bob'])).toEqual(['alice-or-bob', 'small-ids'])
    // An unchanged TOASTed new value is the old one.
    expect(candidates(['1', UNCHANGED_TOAST], ['1', 'alice'])).toEqual(['alice', 'alice-or-bob', 'small-ids'])
  })

  it('lists every shape of a table for TRUNCATE, and forgets removed shapes', () => {
    expect([...index.shapesOf('public', 'items')].sort()).toEqual(['alice', 'alice-or-bob', 'small-ids'])
    index.remove('alice')
    index.remove('small-ids')
    expect(candidates(['1', 'alice'])).toEqual(['alice-or-bob'])
    expect([...index.shapesOf('public', 'other')]).toEqual(['other-table'])
  })
})
