/**
 * Move-ins of a shape with subqueries do not hold up replication (docs/ARCHITECTURE.md I25): the
 * move-in's read runs at its own snapshot while the log keeps flowing, and is merged into the
 * shape's log by the xid rule of the initial snapshot. The read is held inside PostgreSQL by a
 * table lock (after its snapshot is taken, before its rows are read) while other shapes get
 * their changes and writes land on both tables; each is then neither lost nor doubled.
 */
import { ShapeStream } from '@electric-sql/client'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTestSluice, type TestSluice } from './support/sluice.js'
import { TaggedRows } from './support/tagged-rows.js'
import { waitFor } from './support/wait.js'

let sluice: TestSluice

const WHERE = `project_id IN (SELECT project_id FROM memberships WHERE user_id = 'u1')`

beforeAll(async () => {
  sluice = await startTestSluice()
  const q = (sql: string) => sluice.db.pool.query(sql)
  await q(`CREATE TABLE tasks (id int PRIMARY KEY, project_id int, title text NOT NULL)`)
  await q(`CREATE TABLE memberships (id int PRIMARY KEY, project_id int NOT NULL, user_id text NOT NULL)`)
  await q(`CREATE TABLE notes (id int PRIMARY KEY, body text NOT NULL)`)
  await q(`INSERT INTO tasks SELECT i, i % 8, 'task ' || i FROM generate_series(1, 40) i`)
  await q(`INSERT INTO memberships VALUES (1, 1, 'u1')`)
})

afterAll(async () => {
  await sluice?.close()
})

async function answer(where = WHERE): Promise<string> {
  const { rows } = await sluice.db.pool.query<{ v: Record<string, string> }>(
    `SELECT json_build_object('id', id::text, 'project_id', project_id::text, 'title', title) AS v
       FROM tasks WHERE ${where} ORDER BY ('"public"."tasks"/"' || id || '"')`,
  )
  return JSON.stringify(rows.map((row) => row.v))
}

const TEXT = { int4: (v: string) => v }

function follow(table: string, where?: string): { rows: TaggedRows; stream: ShapeStream } {
  const rows = new TaggedRows()
  const stream = new ShapeStream({ url: sluice.shapeUrl(), params: { table, ...(where ? { where } : {}) }, parser: TEXT })
  stream.subscribe((messages) => rows.apply(messages))
  return { rows, stream }
}

/** Whether some backend waits for a lock on `tasks`: the move-in's read, its snapshot taken. */
async function readWaits(): Promise<boolean> {
  const { rows } = await sluice.db.pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_locks WHERE relation = 'tasks'::regclass AND NOT granted`)
  return rows[0]!.n > 0
}

describe('move-ins of a shape with subqueries', () => {
  it('read while the log flows, merged by the xid rule: concurrent writes neither lost nor doubled', async () => {
    // tasks is locked while the memberships change: their answers are read ahead.
    const history = [await answer(), await answer('project_id IN (1, 5)'), await answer('project_id IN (1, 5, 6)')]
    const tasks = follow('tasks', WHERE)
    const notes = follow('notes')
    await waitFor(() => expect(tasks.rows.states.length > 0 && notes.rows.states.length > 0).toBe(true), 30_000)
    expect(tasks.rows.state()).toBe(history[0])
    expect(history[1]).not.toBe(history[0])

    const locker = await sluice.db.pool.connect()
    try {
      await locker.query('BEGIN')
      await locker.query('LOCK TABLE tasks IN ACCESS EXCLUSIVE MODE')
      await sluice.db.pool.query(`INSERT INTO memberships VALUES (2, 5, 'u1')`)
      await waitFor(async () => expect(await readWaits()).toBe(true), 30_000)

      // The stream goes on while that read waits: another shape gets its change.
      await sluice.db.pool.query(`INSERT INTO notes VALUES (1, 'while the move-in is read')`)
      await waitFor(() => expect(notes.rows.rows.size).toBe(1), 30_000)

      // Writes after the read's snapshot: a second move-in, and changes to rows the first one brings in.
      await sluice.db.pool.query(`INSERT INTO memberships VALUES (3, 6, 'u1')`)
      await locker.query(`UPDATE tasks SET title = 'renamed' WHERE id = 5`)
      await locker.query(`INSERT INTO tasks VALUES (100, 5, 'new in 5')`)
      await locker.query(`DELETE FROM tasks WHERE id = 13`)
      await locker.query(`UPDATE tasks SET project_id = 6 WHERE id = 21`)
      await locker.query(`UPDATE tasks SET project_id = 5 WHERE id = 2`)
      await locker.query('COMMIT')
    } finally {
      locker.release()
    }
    history.push(await answer())
    await sluice.db.pool.query(`DELETE FROM memberships WHERE id = 2`)
    history.push(await answer())
    await sluice.db.pool.query(`UPDATE tasks SET title = 'after' WHERE id = 22`)
    history.push(await answer())

    await waitFor(() => expect(tasks.rows.state()).toBe(history.at(-1)), 30_000)
    tasks.stream.unsubscribeAll()
    notes.stream.unsubscribeAll()
    // Each state at an up-to-date is one PostgreSQL passed through, in order.
    const states = tasks.rows.states.filter((state, i, all) => i === 0 || state !== all[i - 1])
    let at = 0
    for (const state of states) {
      const found = history.indexOf(state, at)
      expect(found, `a state no transaction left: ${state}`).toBeGreaterThanOrEqual(0)
      at = found
    }
  })
})
