/**
 * Shapes whose where has a subquery, end to end on the wire: the snapshot's tags and active
 * conditions, a membership change that moves rows in (move-in event and the rows) and out
 * (move-out event), a transaction changing both tables, SLUICE_TABLES for the tables a subquery
 * reads, and hostile subqueries refused with a position before anything runs.
 */
import { createHash } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTestSluice, type TestSluice } from './support/sluice.js'
import { waitFor } from './support/wait.js'

let sluice: TestSluice

beforeAll(async () => {
  sluice = await startTestSluice({ tables: [{ schema: 'public', name: 'tasks' }, { schema: 'public', name: 'memberships' }] })
  const q = (sql: string) => sluice.db.pool.query(sql)
  await q(`CREATE TABLE tasks (id int PRIMARY KEY, project_id int, title text)`)
  await q(`CREATE TABLE memberships (id int PRIMARY KEY, project_id bigint, user_id text NOT NULL)`)
  await q(`CREATE TABLE secrets (id int PRIMARY KEY, project_id int)`)
  await q(`INSERT INTO tasks SELECT i, i % 4, 'task ' || i FROM generate_series(1, 12) i`)
  await q(`INSERT INTO memberships VALUES (1, 1, 'u1'), (2, 2, 'u2')`)
})

afterAll(async () => {
  await sluice?.close()
})

type Message = { key?: string; value?: Record<string, string>; headers: Record<string, unknown> }

const WHERE = 'project_id IN (SELECT project_id FROM memberships WHERE user_id = $1)'

async function get(params: Record<string, string>): Promise<{ status: number; body: unknown; handle: string | null; offset: string | null }> {
  const url = new URL(sluice.shapeUrl())
  for (const [k, v] of Object.entries(params)) url.searchParams.set(k, v)
  const response = await fetch(url)
  return { status: response.status, body: await response.json(), handle: response.headers.get('electric-handle'), offset: response.headers.get('electric-offset') }
}

const md5 = (text: string) => createHash('md5').update(text).digest('hex')

describe('a shape with a subquery on the wire', () => {
  it('tags snapshot rows, moves rows in and out as memberships change, and sees a transaction over both tables whole', async () => {
    const params = { table: 'tasks', where: WHERE, 'params[1]': 'u1' }
    let response = await get({ ...params, offset: '-1' })
    expect(response.status).toBe(200)
    const handle = response.handle!
    const rows = (response.body as Message[]).filter((m) => m.key)
    expect(rows.map((m) => m.value!['id']).sort()).toEqual(['1', '5', '9'])
    // One tag per disjunct (here one), the project's value hashed with the handle, as Electric does.
    expect(rows[0]!.headers).toMatchObject({ operation: 'insert', tags: [md5(`${handle}v:1`)], active_conditions: [true] })

    let offset = response.offset!
    const live = async () => {
      const all: Message[] = []
      for (;;) {
        const next = await get({ ...params, handle, offset, live: 'true' })
        offset = next.offset!
        const messages = next.body as Message[]
        all.push(...messages.filter((m) => !m.headers['control']))
        if (all.length > 0) return all
      }
    }
    await waitFor(async () => {
      const up = await get({ ...params, handle, offset })
      offset = up.offset!
      return expect((up.body as Message[]).some((m) => m.headers['control'] === 'up-to-date')).toBe(true)
    })

    await sluice.db.pool.query(`INSERT INTO memberships VALUES (3, 2, 'u1')`)
    let messages = await live()
    expect(messages[0]).toEqual({ headers: { event: 'move-in', patterns: [{ pos: 0, value: md5(`${handle}v:2`) }] } })
    expect(messages.slice(1).map((m) => [m.headers['operation'], m.value!['id']]).sort()).toEqual([['insert', '10'], ['insert', '2'], ['insert', '6']])
    expect(messages[1]!.headers).toMatchObject({ tags: [md5(`${handle}v:2`)], active_conditions: [true] })

    await sluice.db.pool.query(`DELETE FROM memberships WHERE id = 1`)
    messages = await live()
    expect(messages).toEqual([{ headers: { event: 'move-out', patterns: [{ pos: 0, value: md5(`${handle}v:1`) }] } }])

    // Both tables in one transaction: a task moved to a project entering the result, another
    // to one leaving it, and the membership changes themselves.
    const client = await sluice.db.pool.connect()
    try {
      await client.query('BEGIN')
      await client.query(`UPDATE tasks SET project_id = 3 WHERE id = 2`)
      await client.query(`INSERT INTO memberships VALUES (4, 3, 'u1')`)
      await client.query(`UPDATE tasks SET project_id = 1 WHERE id = 6`)
      await client.query(`DELETE FROM memberships WHERE id = 3`)
      await client.query('COMMIT')
    } finally {
      client.release()
    }
    messages = await live()
    const changes = messages.filter((m) => m.key).map((m) => [m.headers['operation'], m.value!['id']])
    // id 2 stays (project 3 entered), id 6 leaves by update, the rest of project 2 by move-out,
    // project 3's other tasks (3, 7, 11) come in; id 2 is not sent twice.
    expect(changes).toEqual([['update', '2'], ['delete', '6'], ['insert', '3'], ['insert', '7'], ['insert', '11']])
    // The update drops the tag of the project the task left, so a later move-out of it cannot take the task.
    expect(messages[0]!.headers).toMatchObject({ tags: [md5(`${handle}v:3`)], removed_tags: [md5(`${handle}v:2`)], active_conditions: [true] })
    expect(messages.filter((m) => m.headers['event'])).toEqual([
      { headers: { event: 'move-out', patterns: [{ pos: 0, value: md5(`${handle}v:2`) }] } },
      { headers: { event: 'move-in', patterns: [{ pos: 0, value: md5(`${handle}v:3`) }] } },
    ])
  })

  it('refuses a subquery over a table outside SLUICE_TABLES, with its position', async () => {
    const response = await get({ table: 'tasks', where: 'project_id IN (SELECT project_id FROM secrets)', offset: '-1' })
    expect(response.status).toBe(400)
    expect(JSON.stringify(response.body)).toContain('At location 38: a subquery cannot read public.secrets: it is not served here (see SLUICE_TABLES)')
  })
})
