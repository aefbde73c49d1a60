/**
 * Filtered shapes end to end: `where` with `params`, `columns` and `replica` through
 * @electric-sql/client and through the raw log, while rows move in and out of the shape; the
 * electric-schema header of a projection; one handle for one meaning; and hostile where
 * clauses that get a 400 without any statement reaching PostgreSQL.
 */
import { ShapeStream, type Row } from '@electric-sql/client'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { shapeOf } from './support/electric.js'
import { Follower } from './support/follower.js'
import { startTestSluice, waitForReplication, type TestSluice } from './support/sluice.js'
import { waitFor } from './support/wait.js'

let sluice: TestSluice

beforeAll(async () => {
  sluice = await startTestSluice()
  await sluice.db.pool.query(`CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy')`)
  await sluice.db.pool.query(
    `CREATE TABLE items (id int PRIMARY KEY, owner text NOT NULL, title text, price numeric, mood mood, "has,comma" text, "has""quote" int)`,
  )
  await sluice.db.pool.query(`CREATE TABLE secrets (id int PRIMARY KEY, value text)`)
  await sluice.db.pool.query(`INSERT INTO secrets VALUES (1, 'do not leak')`)
  await sluice.db.pool.query(
    `INSERT INTO items SELECT i, CASE WHEN i % 3 = 0 THEN 'alice' ELSE 'bob' END, 'item ' || i, i * 1.25, 'ok', 'c' || i, i FROM generate_series(1, 30) i`,
  )
})

afterAll(async () => {
  await sluice?.close()
})

const WHERE = 'owner = $1 AND price >= $2'

/** The rows the shape must hold: the same filter and projection, asked of PostgreSQL. */
async function expected(columns: string): Promise<Record<string, unknown>[]> {
  const { rows } = await sluice.db.pool.query(`SELECT ${columns} FROM items WHERE owner = 'alice' AND price >= 5 ORDER BY id`)
  return rows
}

describe('filtered shapes through @electric-sql/client', () => {
  it('stay equal to the query while rows move in and out (where + params, columns, replica full)', async () => {
    const stream = new ShapeStream({
      url: sluice.shapeUrl(),
      params: { table: 'items', where: WHERE, params: ['alice', '5'], columns: ['id', 'price', 'has,comma', 'has"quote'], replica: 'full' },
    })
    const shape = shapeOf(stream)
    const asWire = (rows: Row[]) =>
      [...rows]
        .sort((a, b) => Number(a['id']) - Number(b['id']))
        .map((r) => ({ id: r['id'], price: String(r['price']), 'has,comma': r['has,comma'], 'has"quote': r['has"quote'] }))
    const fromDb = async () =>
      (await expected(`id, price::text AS price, "has,comma", "has""quote"`)).map((r) => ({ ...r }))
    expect(asWire(await shape.rows)).toEqual(await fromDb())

    const steps = [
      `UPDATE items SET owner = 'alice' WHERE id IN (4, 5)`, // move in
      `UPDATE items SET owner = 'bob' WHERE id = 6`, // move out
      `UPDATE items SET price = 1 WHERE id = 9`, // move out by the other condition
      `UPDATE items SET price = 100 WHERE id = 3`, // move in by the other condition
      `UPDATE items SET id = 1000 WHERE id = 12`, // primary key change inside the shape
      `UPDATE items SET id = 1001, owner = 'bob' WHERE id = 15`, // key change and move out
      `UPDATE items SET title = 'unselected' WHERE id = 18`, // no selected column changes
      `UPDATE items SET "has,comma" = 'changed' WHERE id = 21`,
      `INSERT INTO items VALUES (2000, 'alice', 'new', 7.5, 'happy', 'x', 1), (2001, 'bob', 'new', 9, 'sad', 'y', 2)`,
      `DELETE FROM items WHERE id IN (24, 25)`,
    ]
    for (const sql of steps) {
      await sluice.db.pool.query(sql)
      const want = await fromDb()
      await waitFor(() => expect(asWire(shape.currentRows)).toEqual(want))
    }
    shape.unsubscribeAll()
    stream.unsubscribeAll()
  })
})

describe('filtered shapes on the wire', () => {
  it('send move-in as insert, move-out as delete, key change as delete + insert, and drop unselected updates', async () => {
    await sluice.db.pool.query(`CREATE TABLE moves (id int PRIMARY KEY, grp int NOT NULL, note text, extra text)`)
    await sluice.db.pool.query(`INSERT INTO moves VALUES (1, 1, 'a', 'x'), (2, 2, 'b', 'y')`)
    const follower = new Follower(sluice.shapeUrl, { table: 'moves', where: 'grp = 1', columns: 'id,grp,note' })
    await follower.catchUp()
    expect(follower.sortedRows()).toEqual([{ id: '1', grp: '1', note: 'a' }])

    const seen: unknown[] = []
    const apply = follower.apply.bind(follower)
    follower.apply = (message) => {
      if (message.headers['operation']) seen.push({ op: message.headers['operation'], key: message.key, value: message.value })
      apply(message)
    }
    await sluice.db.pool.query(`UPDATE moves SET grp = 1 WHERE id = 2`)
    await sluice.db.pool.query(`UPDATE moves SET extra = 'ignored' WHERE id = 1`)
    await sluice.db.pool.query(`UPDATE moves SET id = 3 WHERE id = 1`)
    await sluice.db.pool.query(`UPDATE moves SET grp = 5 WHERE id = 2`)
    await waitForReplication(sluice)
    await follower.catchUp()
    expect(seen).toEqual([
      { op: 'insert', key: '"public"."moves"/"2"', value: { id: '2', grp: '1', note: 'b' } },
      { op: 'delete', key: '"public"."moves"/"1"', value: { id: '1' } },
      { op: 'insert', key: '"public"."moves"/"3"', value: { id: '3', grp: '1', note: 'a' } },
      { op: 'delete', key: '"public"."moves"/"2"', value: { id: '2' } },
    ])
    expect(follower.sortedRows()).toEqual([{ id: '3', grp: '1', note: 'a' }])
  })

  it('lists only the selected columns in electric-schema and snapshot values', async () => {
    const response = await fetch(`${sluice.shapeUrl()}?table=items&offset=-1&columns=id,"has,comma"&where=id%20%3D%201`)
    expect(response.status).toBe(200)
    expect(JSON.parse(response.headers.get('electric-schema')!)).toEqual({
      id: { type: 'int4', pk_index: 0, not_null: true },
      'has,comma': { type: 'text' },
    })
    const body = (await response.json()) as { value?: Record<string, string> }[]
    expect(body.filter((m) => m.value).map((m) => m.value)).toEqual([{ id: '1', 'has,comma': 'c1' }])
  })

  it('rejects columns without the primary key, unknown columns and type errors with 400', async () => {
    const errors = async (query: string) => {
      const response = await fetch(`${sluice.shapeUrl()}?table=items&offset=-1&${query}`)
      expect(response.status).toBe(400)
      return ((await response.json()) as { errors: Record<string, string[]> }).errors
    }
    expect(await errors('columns=title')).toEqual({ columns: ['must include the primary key column "id"'] })
    expect(await errors('columns=id,nope')).toEqual({ columns: ['no such column in public.items: "nope"'] })
    // Electric's form and counting: the byte offset in the clause as the client wrote it.
    expect(await errors('where=owner%20%3D%201')).toEqual({ where: ['At location 6: cannot compare text with int4'] })
    expect(await errors('where=%20(owner%20%20%3D%201)')).toEqual({ where: ['At location 9: cannot compare text with int4'] })
    expect(await errors(`where=mood%20%3D%20'angry'`)).toEqual({ where: ['At location 7: invalid mood value "angry"'] })
    expect(await errors('where=id%20%3D%20%242')).toEqual({ 'params[2]': ['is missing: the where clause uses $2'] })
  })

  it('gives one handle to one meaning, however it is written', async () => {
    const handle = async (query: string) => {
      const response = await fetch(`${sluice.shapeUrl()}?table=items&offset=-1&${query}`)
      expect(response.status).toBe(200)
      await response.arrayBuffer()
      return response.headers.get('electric-handle')
    }
    const first = await handle(`where=${encodeURIComponent(`owner = 'alice' AND price > 3`)}`)
    expect(await handle(`where=${encodeURIComponent(`(OWNER='alice')   and   ((price > 3))`)}`)).toBe(first)
    expect(await handle(`where=${encodeURIComponent('owner = $1 and price > 3')}&params[1]=alice`)).toBe(first)
    expect(await handle(`where=${encodeURIComponent(`owner = 'alice' AND price > 4`)}`)).not.toBe(first)
    const columns = await handle('columns=id,title')
    expect(await handle('columns=%22title%22,ID')).toBe(columns)
  })
})

describe('hostile where clauses', () => {
  const HOSTILE = [
    `id = 1; DROP TABLE secrets`,
    `id = 1 -- comment`,
    `id = 1 /* comment */`,
    `pg_sleep(5) IS NULL`,
    `id IN (SELECT id FROM secrets LIMIT 1)`,
    `id IN (SELECT id FROM secrets WHERE secrets.value = items.owner)`,
    `id IN (SELECT count(*) FROM secrets)`,
    `EXISTS (SELECT 1 FROM secrets)`,
    `(SELECT value FROM secrets LIMIT 1) = 'x'`,
    `current_setting('is_superuser') = 'on'`,
    `lo_import('/etc/passwd') > 0`,
    `pg_read_file('/etc/passwd') = ''`,
    `title = 'x' UNION SELECT 1`,
    `true ORDER BY 1`,
    `id = 1 FOR UPDATE`,
    `title = '${'a'.repeat(12_000)}'`,
    `${'('.repeat(200)}true${')'.repeat(200)}`,
    `${'NOT '.repeat(500)}true`,
    `id = current_user`,
    `id = 1 AND pg_catalog.set_config('a.b', 'c', false) = 'c'`,
  ]

  it('get a 400 naming the problem, and not one statement reaches PostgreSQL', async () => {
    // Every query any pg.Client in this process sends (Sluice runs in-process) is recorded.
    const sent: string[] = []
    const original = pg.Client.prototype.query
    pg.Client.prototype.query = function (this: pg.Client, ...args: unknown[]) {
      const config = args[0]
      sent.push(typeof config === 'string' ? config : String((config as { text?: string } | undefined)?.text ?? ''))
      return (original as (...a: unknown[]) => unknown).apply(this, args)
    } as typeof original
    try {
      // The spy works: a valid filter on a new shape does reach PostgreSQL.
      const ok = await fetch(`${sluice.shapeUrl()}?table=items&offset=-1&where=${encodeURIComponent(`title = 'spy marker'`)}`)
      expect(ok.status).toBe(200)
      await ok.arrayBuffer()
      await waitFor(() => expect(sent.some((q) => q.includes('spy marker'))).toBe(true))

      sent.length = 0
      for (const where of HOSTILE) {
        const response = await fetch(`${sluice.shapeUrl()}?table=items&offset=-1&where=${encodeURIComponent(where)}`)
        const body = (await response.json()) as { errors?: Record<string, string[]> }
        expect({ where: where.slice(0, 60), status: response.status }).toEqual({ where: where.slice(0, 60), status: 400 })
        expect(Object.keys(body.errors ?? {})).toEqual(['where'])
      }
      // A 100 KB clause is refused by the length limit, before parsing.
      const huge = await fetch(`${sluice.shapeUrl()}?table=items&offset=-1&where=${encodeURIComponent(`title = '${'a'.repeat(100_000)}'`)}`)
      expect(huge.status).toBe(400)
      expect(Object.keys(((await huge.json()) as { errors: Record<string, string[]> }).errors)).toEqual(['where'])
      // Nothing at all was sent while the hostile requests were handled: no catalog lookup, no snapshot.
      expect(sent).toEqual([])
    } finally {
      pg.Client.prototype.query = original
    }
    // And the other table is untouched.
    const { rows } = await sluice.db.pool.query(`SELECT value FROM secrets`)
    expect(rows).toEqual([{ value: 'do not leak' }])
  })
})
