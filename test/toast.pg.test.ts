/**
 * Values over 8 KB are TOASTed: stored out of line, and in an UPDATE that does not touch them
 * pgoutput sends them as "unchanged" ('u'), without the value. Sluice must fill them from the
 * old row (the table is REPLICA IDENTITY FULL, whose old row carries them), never send them
 * as null or drop them — in `replica=default` (changed columns only) and `replica=full`
 * (whole rows). Checked through the official client and through the raw log.
 *
 * The values are md5 chains, which pglz cannot compress below the TOAST threshold, and the
 * test checks that they really live in the table's TOAST relation.
 */
import { ShapeStream, type Row } from '@electric-sql/client'
import { createHash } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { shapeOf } from './support/electric.js'
import { Follower, type WireMessage } from './support/follower.js'
import { startTestSluice, type TestSluice } from './support/sluice.js'
import { waitFor } from './support/wait.js'

let sluice: TestSluice

beforeAll(async () => {
  // Clients here leave keep-alive connections open, which a graceful stop would wait out.
  sluice = await startTestSluice({ shutdownTimeoutMs: 100 })
})

afterAll(async () => {
  await sluice?.close()
})

/** `md5(seed || 1) || md5(seed || 2) || …`: `chunks * 32` hex characters of incompressible text. */
function md5Chain(seed: string, chunks: number): string {
  return `(SELECT string_agg(md5(${seed}::text || g), '' ORDER BY g) FROM generate_series(1, ${chunks}) g)`
}

/** 22,400 characters of text, 640 hex digits as JSON, 9,600 random bytes. */
const BIG_BODY = (seed: string) => md5Chain(seed, 700)
const BIG_DOC = (seed: string) => `jsonb_build_object('k', ${md5Chain(`'doc' || ${seed}`, 20)}, 'pad', ${md5Chain(`'pad' || ${seed}`, 400)})`
const BIG_BLOB = (seed: string) => `decode(${md5Chain(`'blob' || ${seed}`, 600)}, 'hex')`

describe.each(['default', 'full'] as const)('TOAST with replica=%s', (replica) => {
  const table = `docs_${replica}`

  async function tableRows(): Promise<Row[]> {
    const { rows } = await sluice.db.pool.query<Row>(`SELECT id, n, body, doc, blob::text AS blob FROM ${table} ORDER BY id`)
    return rows
  }

  async function tableRowsAsText(): Promise<Record<string, string | null>[]> {
    const { rows } = await sluice.db.pool.query<Record<string, string | null>>(
      `SELECT id::text, n::text, body, doc::text, blob::text FROM ${table} ORDER BY ${table}.id`,
    )
    return rows
  }

  it('keeps values over 8 KB through updates of other columns', async () => {
    const db = sluice.db.pool
    await db.query(`CREATE TABLE ${table} (id int PRIMARY KEY, n int NOT NULL, body text, doc jsonb, blob bytea)`)
    await db.query(
      `INSERT INTO ${table} SELECT id, 0, ${BIG_BODY('id')}, ${BIG_DOC('id')}, ${BIG_BLOB('id')} FROM generate_series(1, 2) id`,
    )
    await db.query(`INSERT INTO ${table} VALUES (3, 0, 'small', '{"small": true}', '\\x00ff'), (4, 0, NULL, NULL, NULL)`)

    // The values really are out of line, and over 8 KB as stored.
    const stored = await db.query<{ toast_bytes: string; body: number; doc: number; blob: number }>(
      `SELECT pg_relation_size(c.reltoastrelid)::text AS toast_bytes,
              (SELECT min(pg_column_size(body)) FROM ${table} WHERE id <= 2) AS body,
              (SELECT min(pg_column_size(doc)) FROM ${table} WHERE id <= 2) AS doc,
              (SELECT min(pg_column_size(blob)) FROM ${table} WHERE id <= 2) AS blob
         FROM pg_class c WHERE c.oid = '${table}'::regclass`,
    )
    expect(Number(stored.rows[0]!.toast_bytes)).toBeGreaterThan(4 * 8192)
    expect(stored.rows[0]!.body).toBeGreaterThan(8192)
    expect(stored.rows[0]!.doc).toBeGreaterThan(8192)
    expect(stored.rows[0]!.blob).toBeGreaterThan(8192)

    const params = { table, replica }
    const stream = new ShapeStream<Row>({ url: sluice.shapeUrl(), params })
    const shape = shapeOf(stream)
    const follower = new RecordingFollower(() => sluice.shapeUrl(), params)
    expect(brief(sortById(await shape.rows))).toEqual(brief(await tableRows()))

    /** Both clients equal the table. */
    const inSync = async (what: string): Promise<void> => {
      const expected = await tableRows()
      await waitFor(() => expect(brief(sortById(shape.currentRows)), what).toEqual(brief(expected)))
      await follower.catchUp()
      expect(brief(sortById(follower.sortedRows())), what).toEqual(brief(await tableRowsAsText()))
    }
    await inSync('snapshot')

    // Only another column changes: every TOASTed value is "unchanged" in the new tuple.
    await db.query(`UPDATE ${table} SET n = n + 1`)
    await inSync('after an update of another column')

    // In one transaction: another column, then the large value itself, then another column again.
    await db.query('BEGIN')
    await db.query(`UPDATE ${table} SET n = 10 WHERE id = 1`)
    await db.query(`UPDATE ${table} SET body = ${BIG_BODY(`'new'`)} WHERE id = 1`)
    await db.query(`UPDATE ${table} SET n = 11 WHERE id = 1`)
    await db.query('COMMIT')
    await inSync('after mixed updates in one transaction')

    // A primary-key change reaches the client as delete + insert: the insert needs every value.
    await db.query(`UPDATE ${table} SET id = 20 WHERE id = 2`)
    await inSync('after a primary-key change')

    // A row inserted with large values, then updated in a later transaction.
    await db.query(`INSERT INTO ${table} SELECT 5, 0, ${BIG_BODY(`'five'`)}, ${BIG_DOC(`'five'`)}, ${BIG_BLOB(`'five'`)}`)
    await db.query(`UPDATE ${table} SET n = 5 WHERE id = 5`)
    await db.query(`UPDATE ${table} SET n = n + 1 WHERE id IN (3, 4, 5, 20)`)
    await inSync('after updates of a newly inserted large row')

    // A new shape (the other replica mode, so it is not the same log) reads them from its snapshot.
    const late = new Follower(() => sluice.shapeUrl(), { table, replica: replica === 'full' ? 'default' : 'full' })
    await late.catchUp()
    expect(brief(sortById(late.sortedRows()))).toEqual(brief(await tableRowsAsText()))

    // On the wire: `full` sends whole rows; `default` may leave unchanged columns out, but
    // never sends a large value as null.
    const changes = follower.messages.filter((m) => m.headers['operation'] === 'insert' || m.headers['operation'] === 'update')
    expect(changes.length).toBeGreaterThan(10)
    for (const message of changes) {
      const value = message.value!
      if (replica === 'full') expect(Object.keys(value).sort(), message.key).toEqual(['blob', 'body', 'doc', 'id', 'n'])
      if (value['id'] !== '4') expect(Object.entries(value).filter(([, v]) => v === null), message.key).toEqual([])
    }

    shape.unsubscribeAll()
    stream.unsubscribeAll()
  })
})

/** A Follower that also keeps every message it applied. */
class RecordingFollower extends Follower {
  readonly messages: WireMessage[] = []

  override apply(message: WireMessage): void {
    this.messages.push(message)
    super.apply(message)
  }
}

function sortById<T extends Record<string, unknown>>(rows: T[]): T[] {
  return [...rows].sort((a, b) => Number(a['id']) - Number(b['id']))
}

/** Rows with long values replaced by their length and hash, so a failure prints readably. */
function brief(rows: Record<string, unknown>[]): Record<string, unknown>[] {
  return rows.map((row) =>
    Object.fromEntries(
      Object.entries(row).map(([column, value]) => {
        const text = typeof value === 'string' ? value : value !== null && typeof value === 'object' ? JSON.stringify(value) : undefined
        if (text === undefined || text.length <= 64) return [column, value]
        return [column, `<${text.length} chars, sha1 ${createHash('sha1').update(text).digest('hex').slice(0, 12)}>`]
      }),
    ),
  )
}
