/**
 * After a restart, a shape with subqueries' log is compared with its rows at a new snapshot
 * (`logged-rows.ts`, `resync.ts`): the rows a client holds at the log's end, by the tag rules,
 * and the one transaction of differences that brings it to the snapshot.
 */
import { describe, expect, it } from 'vitest'
import { loggedRows } from '../../src/shapes/subquery/logged-rows.js'
import { resyncMessages } from '../../src/shapes/subquery/resync.js'
import type { ChangeMessage } from '../../src/shapes/change-encoder.js'

const entry = (message: unknown) => Buffer.from(JSON.stringify(message))
const row = (id: string, project: string, tags: string[], title = `t${id}`): ChangeMessage => ({
  key: `"public"."tasks"/"${id}"`,
  value: { id, project_id: project, title },
  headers: { operation: 'insert', relation: ['public', 'tasks'], lsn: '0', op_position: 0, txids: [0], tags, active_conditions: [true] },
})

describe('loggedRows', () => {
  it('keeps what a client keeps: updates merge and drop removed tags, a move-out drops the rows it leaves without a tag', () => {
    const rows = loggedRows([
      entry(row('1', '1', ['h1'])),
      entry(row('2', '2', ['h2'])),
      entry(row('3', '1', ['h1'])),
      entry({ headers: { control: 'snapshot-end', xmin: '1', xmax: '1', xip_list: [] } }),
      entry({ key: '"public"."tasks"/"3"', value: { id: '3', project_id: '2' }, headers: { operation: 'update', tags: ['h2'], removed_tags: ['h1'], active_conditions: [true] } }),
      entry({ headers: { event: 'move-out', patterns: [{ pos: 0, value: 'h1' }] } }),
    ])
    expect([...rows.keys()]).toEqual(['"public"."tasks"/"2"', '"public"."tasks"/"3"'])
    expect(rows.get('"public"."tasks"/"3"')).toEqual({ value: { id: '3', project_id: '2', title: 't3' }, tags: new Set(['h2']), active: [true] })
  })
})

describe('resyncMessages', () => {
  it('inserts what is new, updates what changed (columns, tags), deletes what is gone, as one transaction', () => {
    const held = loggedRows([entry(row('1', '1', ['h1'])), entry(row('2', '2', ['h2'])), entry(row('3', '3', ['h3']))])
    const now = [row('1', '1', ['h1']), row('2', '4', ['h4'], 'renamed'), row('5', '4', ['h4'])]
    const messages = resyncMessages(held, now, { lsn: '900', xid: 0, relation: ['public', 'tasks'], primaryKey: ['id'], replica: 'default' })
    expect(messages.map((m) => [m.headers.operation, m.key, m.value, m.headers.op_position])).toEqual([
      ['update', '"public"."tasks"/"2"', { id: '2', project_id: '4', title: 'renamed' }, 0],
      ['insert', '"public"."tasks"/"5"', { id: '5', project_id: '4', title: 't5' }, 1],
      ['delete', '"public"."tasks"/"3"', { id: '3' }, 2],
    ])
    expect(messages[0]!.headers).toMatchObject({ lsn: '900', tags: ['h4'], removed_tags: ['h2'], active_conditions: [true] })
    expect(messages.map((m) => m.headers.last)).toEqual([undefined, undefined, true])
  })
})
