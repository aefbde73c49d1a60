/**
 * The soak's HTTP follower trace (soak/http-trace.ts) keeps what a mismatch needs: each response's
 * status, worker, handle and offsets, and each row's last changes with where they came from.
 */
import { describe, expect, it } from 'vitest'
import { HttpTrace } from '../soak/http-trace.js'

const request = (offset: string, live = false) => new URL(`http://sluice/v1/shape?table=accounts&offset=${offset}${live ? '&live=true' : ''}`)
const answer = (status: number, headers: Record<string, string>) => new Response(null, { status, headers })
const change = (id: number, lsn: number, v: number, operation = 'update') => ({
  key: `"public"."accounts"/"${id}"`,
  value: { id: String(id), v: String(v) },
  headers: { operation, lsn: String(lsn), op_position: 0, txids: [700 + lsn] },
})

describe('soak HTTP trace', () => {
  it('names each response and each row change with its worker, handle, LSN and txid', () => {
    const trace = new HttpTrace(Date.now())
    const snapshot = { key: '"public"."accounts"/"9"', value: { id: '9', v: '1' }, headers: { operation: 'insert' } }
    trace.response(request('-1'), answer(200, { 'electric-handle': 'h1', 'electric-offset': '0_0', 'x-sluice-worker': '41' }), [snapshot, { headers: { control: 'snapshot-end' } }])
    trace.response(request('0_0', true), answer(200, { 'electric-handle': 'h1', 'electric-offset': '5_0' }), [change(9, 3, 2), change(19, 4, 7), change(9, 5, 6), { headers: { control: 'up-to-date' } }])
    trace.response(request('5_0', true), answer(409, { 'electric-handle': 'h2', 'x-sluice-worker': '42' }), [])
    expect(trace.row('9').replace(/\d+\.\d s/g, 'T')).toBe(
      `insert snapshot txid null {"id":"9","v":"1"} (response #1, worker 41, h1, T); ` +
        `update 3/0 txid [703] {"id":"9","v":"2"} (response #2, worker owner, h1, T); ` +
        `update 5/0 txid [705] {"id":"9","v":"6"} (response #2, worker owner, h1, T)`,
    )
    expect(trace.row('1')).toBe('none received')
    const lines = trace.toString().replace(/\d+\.\d s/g, 'T').split(' | ')
    expect(lines).toEqual([
      '#1 T 200 worker 41 h1 -1 -> 0_0: 1 changes ["public"."accounts"/"9" insert snapshot] snapshot-end',
      '#2 T 200 live worker owner h1 0_0 -> 5_0: 3 changes ["public"."accounts"/"9" update 3/0, "public"."accounts"/"19" update 4/0, "public"."accounts"/"9" update 5/0] up-to-date',
      '#3 T 409 live worker 42 h2 5_0 -> -: 0 changes',
    ])
  })

  it('keeps only the last responses and each row’s last changes', () => {
    const trace = new HttpTrace(Date.now())
    for (let i = 1; i <= 40; i++) trace.response(request(`${i - 1}_0`), answer(200, { 'electric-handle': 'h', 'electric-offset': `${i}_0` }), [change(1, i, i)])
    expect(trace.toString().split(' | ')).toHaveLength(24)
    expect(trace.toString()).toMatch(/^#17 /)
    expect(trace.row('1').split('; ').map((c) => c.split(' ')[1])).toEqual(['37/0', '38/0', '39/0', '40/0'])
  })
})
