import { describe, expect, it } from 'vitest'
import { TableError } from '../src/errors.js'
import { parseTableName } from '../src/pg/table-name.js'

describe('parseTableName', () => {
  it.each([
    ['items', { schema: 'public', name: 'items' }],
    ['Items', { schema: 'public', name: 'items' }],
    ['app.items', { schema: 'app', name: 'items' }],
    ['App.ITEMS', { schema: 'app', name: 'items' }],
    ['_x$1', { schema: 'public', name: '_x$1' }],
    ['"Items"', { schema: 'public', name: 'Items' }],
    ['app."my table"', { schema: 'app', name: 'my table' }],
    ['"My App"."My Table"', { schema: 'My App', name: 'My Table' }],
    ['"has""quote"', { schema: 'public', name: 'has"quote' }],
    ['""""', { schema: 'public', name: '"' }],
    ['"a.b"', { schema: 'public', name: 'a.b' }],
    ['"a.b"."c.d"', { schema: 'a.b', name: 'c.d' }],
    ['"Zürich"', { schema: 'public', name: 'Zürich' }],
    ['"日本"."表"', { schema: '日本', name: '表' }],
    ['"  spaced  "', { schema: 'public', name: '  spaced  ' }],
    ['"1st"', { schema: 'public', name: '1st' }],
    [`"${'é'.repeat(31)}x"`, { schema: 'public', name: `${'é'.repeat(31)}x` }],
    ['a'.repeat(63), { schema: 'public', name: 'a'.repeat(63) }],
  ])('parses %j', (text, expected) => {
    expect(parseTableName(text)).toEqual(expected)
  })

  it.each([
    ['', 'must not be empty'],
    ['a.b.c', 'more than two parts'],
    ['"a"."b"."c"', 'more than two parts'],
    ['a\0b', 'NUL'],
    ['"a\0b"', 'NUL'],
    ['"unterminated', 'unterminated'],
    ['app."unterminated', 'unterminated'],
    ['"has""', 'unterminated'],
    ['""', 'zero-length'],
    ['a.""', 'zero-length'],
    ['a'.repeat(64), 'longer than 63 bytes'],
    // 32 two-byte characters: 32 characters but 64 bytes.
    [`"${'é'.repeat(32)}"`, 'longer than 63 bytes'],
    [`${'a'.repeat(64)}.items`, 'longer than 63 bytes'],
    ['items;', 'unexpected ";"'],
    ['items --', 'unexpected " "'],
    ['"items"x', 'unexpected "x"'],
    ['items.', 'found end of text'],
    ['.items', 'found "."'],
    ['a..b', 'found "."'],
    ['1items', 'found "1"'],
    [' items', 'found " "'],
    ['items ', 'unexpected " "'],
    ['Zürich', 'unexpected "ü"'],
    ['public.items.', 'more than two parts'],
  ])('rejects %j', (text, reason) => {
    let thrown: unknown
    try {
      parseTableName(text)
    } catch (error) {
      thrown = error
    }
    expect(thrown).toBeInstanceOf(TableError)
    expect((thrown as TableError).code).toBe('invalid_table_name')
    expect((thrown as TableError).message).toContain(reason)
  })
})
