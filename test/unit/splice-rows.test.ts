/**
 * A move-in's rows put into its transaction's messages (`splice-rows.ts`): each row once, as
 * the read has it, in the place of the transaction's own message for it when that is an insert
 * or an update.
 */
import { describe, expect, it } from 'vitest'
import type { ChangeMessage } from '../../src/shapes/change-encoder.js'
import { spliceRows } from '../../src/shapes/subquery/splice-rows.js'

const headers = (operation: 'insert' | 'update' | 'delete', tags: string[], removed?: string[]) => ({
  operation,
  relation: ['public', 'tasks'] as const,
  lsn: '100',
  op_position: 0,
  txids: [7] as const,
  tags,
  ...(removed ? { removed_tags: removed } : {}),
  active_conditions: [true],
})
const message = (key: string, operation: 'insert' | 'update' | 'delete', value: Record<string, string>, tags: string[], removed?: string[]): ChangeMessage => ({
  key,
  value,
  headers: headers(operation, tags, removed),
})
const MOVE_IN = { headers: { event: 'move-in' as const, patterns: [{ pos: 0, value: 'p3' }] } }

describe('spliceRows', () => {
  it('sends a row the transaction updated once, as the read has it, keeping the update and the tags it removes', () => {
    const update = message('k', 'update', { id: '2', project_id: '3' }, ['p3'], ['p2'])
    const read = message('k', 'insert', { id: '2', project_id: '3', title: 'newer' }, ['p3'])
    const other = message('m', 'insert', { id: '3', project_id: '3', title: 'x' }, ['p3'])
    expect(spliceRows([update, MOVE_IN], [read, other])).toEqual([
      { key: 'k', value: read.value, headers: { ...update.headers, tags: ['p3'], removed_tags: ['p2'] } },
      MOVE_IN,
      other,
    ])
  })

  it('replaces an insert by the read’s row, and puts a row after the transaction’s delete of it', () => {
    const insert = message('k', 'insert', { id: '2', title: 'old' }, ['p3'])
    const del = message('d', 'delete', { id: '9' }, [])
    const readK = message('k', 'insert', { id: '2', title: 'newer' }, ['p3'])
    const readD = message('d', 'insert', { id: '9', title: 'again' }, ['p3'])
    expect(spliceRows([insert, del, MOVE_IN], [readK, readD])).toEqual([readK, del, MOVE_IN, readD])
  })
})
