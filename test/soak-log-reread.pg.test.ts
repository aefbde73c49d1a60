/**
 * A soak mismatch reads the shape's log again (soak/log-reread.ts): it names the differing rows'
 * changes the log holds, marks those past the follower's offset, and says when the handle is gone.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { rereadLog } from '../soak/log-reread.js'
import { Follower } from './support/follower.js'
import { startTestSluice, type TestSluice } from './support/sluice.js'

let sluice: TestSluice

beforeAll(async () => {
  sluice = await startTestSluice()
  await sluice.db.pool.query(`CREATE TABLE reread (id int PRIMARY KEY, v int NOT NULL); INSERT INTO reread VALUES (1, 0), (2, 0)`)
})

afterAll(async () => {
  await sluice?.close()
})

describe('soak log re-read', () => {
  it('lists the rows’ changes in the log, those past the offset marked, and a gone handle', async () => {
    const follower = new Follower(() => sluice.shapeUrl(), { table: 'reread' })
    await follower.catchUp()
    await sluice.db.pool.query(`UPDATE reread SET v = 1 WHERE id = 1`)
    while (follower.rows.get('"public"."reread"/"1"')?.['v'] !== '1') await follower.step({ live: true })
    const offset = follower.offset
    await sluice.db.pool.query(`UPDATE reread SET v = 2 WHERE id = 1`)
    while (follower.rows.get('"public"."reread"/"1"')?.['v'] !== '2') await follower.step({ live: true })

    const text = await rereadLog(sluice.shapeUrl(), { table: 'reread' }, follower.handle!, offset, ['1', '2'])
    const [row1, row2] = text.slice(text.indexOf(': ') + 2).split(' || ')
    expect(row1).toMatch(/^id 1: insert snapshot \{"id":"1","v":"0"\}; update \d+\/\d+ txid \[\d+\] \{"id":"1","v":"1"\}; update \d+\/\d+ txid \[\d+\] \{"id":"1","v":"2"\} \(past the client’s offset\)$/)
    expect(row2).toBe('id 2: insert snapshot {"id":"2","v":"0"}')
    expect(text).toMatch(/from worker\(s\) owner:/)

    expect(await rereadLog(sluice.shapeUrl(), { table: 'reread' }, 'no-such-handle', offset, ['1'])).toMatch(/^the handle is gone \((409|answered as .+)\)/)
  })
})
