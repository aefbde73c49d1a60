/**
 * A shape with subqueries survives a restart of Sluice (docs/ARCHITECTURE.md I25): its client goes
 * on from its handle and offset (no 409), and reaches PostgreSQL's answer although its subqueries'
 * results were only in memory and memberships and tasks changed while Sluice was down; after the
 * restart, moves in and out follow from the results read again. A client awaiting a write made
 * while Sluice was down finds it in the `snapshot-end` after the differences; a shape of only
 * changes ends (409).
 */
import type { Message } from '@electric-sql/client'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTestSluice, type TestSluice } from './support/sluice.js'
import { TaggedRows } from './support/tagged-rows.js'
import { waitFor } from './support/wait.js'

let sluice: TestSluice

const WHERE = `project_id IN (SELECT project_id FROM memberships WHERE user_id = 'u1')`

beforeAll(async () => {
  sluice = await startTestSluice()
  const q = (sql: string) => sluice.db.pool.query(sql)
  await q(`CREATE TABLE tasks (id int PRIMARY KEY, project_id int NOT NULL, title text NOT NULL)`)
  await q(`CREATE TABLE memberships (id int PRIMARY KEY, project_id int NOT NULL, user_id text NOT NULL)`)
  await q(`INSERT INTO tasks SELECT i, i % 5, 'task ' || i FROM generate_series(1, 30) i`)
  await q(`INSERT INTO memberships VALUES (1, 1, 'u1'), (2, 2, 'u1')`)
})

afterAll(async () => {
  await sluice?.close()
})

async function answer(): Promise<string> {
  const { rows } = await sluice.db.pool.query<{ v: Record<string, string> }>(
    `SELECT json_build_object('id', id::text, 'project_id', project_id::text, 'title', title) AS v
       FROM tasks WHERE ${WHERE} ORDER BY ('"public"."tasks"/"' || id || '"')`,
  )
  return JSON.stringify(rows.map((row) => row.v))
}

/** Every message read, in order. */
const read: Message[] = []

/** Reads the shape from `at` to an up-to-date, applying what it gets; every answer must be a 200. */
async function catchUp(rows: TaggedRows, at: { handle?: string; offset: string }): Promise<{ handle: string; offset: string }> {
  let { handle, offset } = at
  for (;;) {
    const url = new URL(sluice.shapeUrl())
    for (const [k, v] of Object.entries({ table: 'tasks', where: WHERE, offset, ...(handle ? { handle } : {}) })) url.searchParams.set(k, v)
    const response = await fetch(url)
    expect(response.status).toBe(200)
    handle = response.headers.get('electric-handle')!
    offset = response.headers.get('electric-offset')!
    const messages = (await response.json()) as Message[]
    read.push(...messages)
    rows.apply(messages)
    if (messages.some((m) => (m.headers as Record<string, unknown>)['control'] === 'up-to-date')) return { handle, offset }
  }
}

describe('a shape with subqueries across a restart', () => {
  it('goes on from its offset to PostgreSQL’s answer, with what changed while Sluice was down', async () => {
    const rows = new TaggedRows()
    let at = await catchUp(rows, { offset: '-1' })
    expect(rows.state()).toBe(await answer())
    // A move-out and a move-in in the log before the restart.
    await sluice.db.pool.query(`DELETE FROM memberships WHERE id = 2`)
    await sluice.db.pool.query(`INSERT INTO memberships VALUES (3, 3, 'u1')`)
    const before = await answer()
    await waitFor(async () => {
      at = await catchUp(rows, at)
      expect(rows.state()).toBe(before)
    })
    const handle = at.handle
    // A shape of only changes, which cannot be resumed: its clients hold rows its log does not tell.
    const changesOnly = await fetch(`${sluice.shapeUrl()}?table=tasks&offset=-1&log=changes_only&where=${encodeURIComponent(WHERE)}`)
    expect(changesOnly.status).toBe(200)
    const changesOnlyAt = { handle: changesOnly.headers.get('electric-handle')!, offset: changesOnly.headers.get('electric-offset')! }
    read.length = 0

    let renamedBy = 0n
    await sluice.restart({
      whileDown: async () => {
        await sluice.db.pool.query(`DELETE FROM memberships WHERE id = 1`)
        await sluice.db.pool.query(`INSERT INTO memberships VALUES (4, 4, 'u1')`)
        const writer = await sluice.db.pool.connect()
        try {
          await writer.query('BEGIN')
          await writer.query(`UPDATE tasks SET title = 'renamed' WHERE id = 3`)
          renamedBy = BigInt((await writer.query<{ x: string }>('SELECT pg_current_xact_id()::text AS x')).rows[0]!.x)
          await writer.query('COMMIT')
        } finally {
          writer.release()
        }
        await sluice.db.pool.query(`UPDATE tasks SET project_id = 4 WHERE id = 8`)
        await sluice.db.pool.query(`INSERT INTO tasks VALUES (100, 3, 'new')`)
      },
    })
    const down = await answer()
    await waitFor(async () => {
      at = await catchUp(rows, at)
      expect(rows.state()).toBe(down)
    })
    expect(at.handle).toBe(handle)
    // The rename is folded into the differences (txids [0]); the snapshot-end after them shows it,
    // so a client awaiting its txid (TanStack DB's awaitTxId) takes it as seen.
    const ends = read.flatMap((m) => ((m.headers as Record<string, unknown>)['control'] === 'snapshot-end' ? [m.headers as unknown as { xmax: string; xip_list: string[] }] : []))
    expect(ends.some((end) => BigInt(end.xmax) > renamedBy && !end.xip_list.includes(String(renamedBy)))).toBe(true)
    const refetch = await fetch(
      `${sluice.shapeUrl()}?table=tasks&log=changes_only&where=${encodeURIComponent(WHERE)}&handle=${changesOnlyAt.handle}&offset=${changesOnlyAt.offset}`,
    )
    expect(refetch.status).toBe(409)

    // The results read again keep following: a move-in, a move-out and a task moving between them.
    await sluice.db.pool.query(`INSERT INTO memberships VALUES (5, 2, 'u1')`)
    await sluice.db.pool.query(`DELETE FROM memberships WHERE id = 3`)
    await sluice.db.pool.query(`UPDATE tasks SET project_id = 2 WHERE id = 4`)
    const after = await answer()
    await waitFor(async () => {
      at = await catchUp(rows, at)
      expect(rows.state()).toBe(after)
    })
    expect(at.handle).toBe(handle)
  })
})
