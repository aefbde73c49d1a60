import { describe, expect, it } from 'vitest'
import { relationPrefix, rowKey } from '../../src/shapes/row-key.js'

describe('relationPrefix', () => {
  it('quotes schema and table', () => {
    expect(relationPrefix({ schema: 'public', name: 'items' })).toBe('"public"."items"')
    expect(relationPrefix({ schema: 'app', name: 'my table' })).toBe('"app"."my table"')
    expect(relationPrefix({ schema: 'a', name: 'has"quote' })).toBe('"a"."has""quote"')
  })
})

describe('rowKey', () => {
  const prefix = '"public"."items"'

  it.each<[readonly (string | null)[], string]>([
    [['1'], '"public"."items"/"1"'],
    [[''], '"public"."items"/""'],
    [[null], '"public"."items"/_'],
    [['_'], '"public"."items"/"_"'],
    [['a/b'], '"public"."items"/"a//b"'],
    [['/'], '"public"."items"/"//"'],
    [['//x/'], '"public"."items"/"////x//"'],
    [['a"b'], '"public"."items"/"a"b"'],
    [['Zürich ☃'], '"public"."items"/"Zürich ☃"'],
    [['1', '2'], '"public"."items"/"1"/"2"'],
    [['a/b', null, 'c'], '"public"."items"/"a//b"/_/"c"'],
    [[null, null], '"public"."items"/_/_'],
    [[], '"public"."items"'],
  ])('%j → %s', (values, expected) => {
    expect(rowKey(prefix, values)).toBe(expected)
  })

  it('keeps keys distinct where a naive join would collide', () => {
    const keys = [
      rowKey(prefix, ['a/b']),
      rowKey(prefix, ['a', 'b']),
      rowKey(prefix, ['a"/"b']),
      rowKey(prefix, [null]),
      rowKey(prefix, ['_']),
      rowKey(prefix, ['']),
    ]
    expect(new Set(keys).size).toBe(keys.length)
  })
})
