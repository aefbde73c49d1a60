/**
 * Schema changes and table events: each rotates the affected shapes (clients get 409, then a
 * correct snapshot under the new schema, or a 400 when the table is gone), writes around the
 * event are not lost, and shapes the event does not touch keep going.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ManualClock } from './support/clock.js'
import { Follower } from './support/follower.js'
import { startTestSluice, waitForReplication, type TestSluice } from './support/sluice.js'
import { waitFor } from './support/wait.js'

let sluice: TestSluice
/** The table catalog's clock: a DDL with no write after it is seen only once its cached answer expires. */
const catalogClock = new ManualClock()
/** Past the catalog's TTL (5 s, `pg/table-catalog.ts`). */
const PAST_CATALOG_TTL_MS = 60_000

beforeAll(async () => {
  sluice = await startTestSluice({}, undefined, { catalog: { now: catalogClock.now } })
})

afterAll(async () => {
  await sluice?.close()
})

async function createTable(name: string): Promise<void> {
  await sluice.db.pool.query(`CREATE TABLE ${name} (id int PRIMARY KEY, a text, b int)`)
  await sluice.db.pool.query(`INSERT INTO ${name} SELECT g, 'a' || g, g FROM generate_series(1, 20) g`)
}

/** The table's rows with every column as text, as a shape client holds them. */
async function tableRows(name: string): Promise<Record<string, string | null>[]> {
  const { rows } = await sluice.db.pool.query<{ row: Record<string, unknown> }>(`SELECT to_jsonb(t) AS row FROM ${name} t ORDER BY id`)
  return rows.map(({ row }) => Object.fromEntries(Object.entries(row).map(([k, v]) => [k, v === null ? null : String(v)])))
}

function rowsOf(follower: Follower): Record<string, string | null>[] {
  return [...follower.rows.values()].sort((x, y) => Number(x['id']) - Number(y['id']))
}

/** Syncs, applies `event` between writes, then follows to the end. */
async function throughEvent(table: string, event: string, after: string): Promise<Follower> {
  const follower = new Follower(() => sluice.shapeUrl(), { table })
  await follower.catchUp()
  await sluice.db.pool.query(`UPDATE ${table} SET b = b + 100 WHERE id <= 5`)
  await sluice.db.pool.query(event)
  await sluice.db.pool.query(after)
  await waitForReplication(sluice)
  return follower
}

/**
 * Follows until the client has refetched and holds exactly the table. The shape is dropped
 * after the Relation message is handled, not with it, so a catch-up may still end on the old one.
 */
async function followToEnd(follower: Follower, table: string): Promise<void> {
  await waitFor(async () => {
    await follower.catchUp()
    expect(follower.refetches).toBeGreaterThanOrEqual(1)
    expect(rowsOf(follower)).toEqual(await tableRows(table))
  })
}

describe('schema changes rotate shapes', () => {
  const cases: [string, string, string][] = [
    ['add column', 'ALTER TABLE add_col ADD COLUMN c text', `INSERT INTO add_col VALUES (100, 'new', 1, 'c')`],
    ['drop column', 'ALTER TABLE drop_col DROP COLUMN b', `INSERT INTO drop_col VALUES (100, 'new')`],
    ['rename column', 'ALTER TABLE rename_col RENAME COLUMN a TO a2', `UPDATE rename_col SET a2 = 'renamed' WHERE id = 1`],
    ['change column type', 'ALTER TABLE retype_col ALTER COLUMN b TYPE bigint', `INSERT INTO retype_col VALUES (100, 'new', 9000000000)`],
  ]
  for (const [label, ddl, after] of cases) {
    const table = ddl.split(' ')[2]!
    it(`${label}: the client refetches and ends equal to the table`, async () => {
      await createTable(table)
      const follower = await throughEvent(table, ddl, after)
      await followToEnd(follower, table)
    })
  }

  it('catches a DDL that no write follows (no Relation message) on the next request', async () => {
    await createTable('quiet_ddl')
    const follower = new Follower(() => sluice.shapeUrl(), { table: 'quiet_ddl' })
    await follower.catchUp()
    await sluice.db.pool.query('ALTER TABLE quiet_ddl ADD COLUMN c text DEFAULT \'x\'')
    catalogClock.advance(PAST_CATALOG_TTL_MS)
    await followToEnd(follower, 'quiet_ddl')
  })

  it('truncate: the client refetches an empty table, then later rows', async () => {
    await createTable('truncated')
    const follower = await throughEvent('truncated', 'TRUNCATE truncated', `INSERT INTO truncated VALUES (7, 'after', 7)`)
    await followToEnd(follower, 'truncated')
  })

  it('table rename and drop: clients get 409, and the old name is then a 400', async () => {
    for (const [table, ddl] of [
      ['renamed_t', 'ALTER TABLE renamed_t RENAME TO renamed_t2'],
      ['dropped_t', 'DROP TABLE dropped_t'],
    ] as const) {
      await createTable(table)
      const follower = new Follower(() => sluice.shapeUrl(), { table })
      await follower.catchUp()
      await sluice.db.pool.query(ddl)
      catalogClock.advance(PAST_CATALOG_TTL_MS)
      // The shape is gone; with no table of that name left there is no new handle to give, so
      // the answer is the 400 a new request for that name gets (after a 409 if one is possible).
      let status = await follower.step()
      if (status === 409) status = await follower.step()
      expect(status, table).toBe(400)
      const direct = await fetch(`${sluice.shapeUrl()}?table=${table}&offset=-1`)
      expect(direct.status).toBe(400)
      expect(((await direct.json()) as { errors: Record<string, string[]> }).errors['table']).toBeDefined()
    }
  })

  it('a shape whose columns an added column does not touch keeps going', async () => {
    await createTable('narrow')
    const follower = new Follower(() => sluice.shapeUrl(), { table: 'narrow', columns: 'id,a' })
    await follower.catchUp()
    await sluice.db.pool.query('ALTER TABLE narrow ADD COLUMN c text')
    await sluice.db.pool.query(`INSERT INTO narrow VALUES (100, 'new', 1, 'c')`)
    await waitForReplication(sluice)
    // The next request checks the shape against the catalog afresh.
    catalogClock.advance(PAST_CATALOG_TTL_MS)
    await follower.catchUp()
    expect(follower.refetches).toBe(0)
    const { rows } = await sluice.db.pool.query<{ id: string; a: string }>('SELECT id::text, a FROM narrow ORDER BY narrow.id')
    expect(rowsOf(follower)).toEqual(rows)
  })
})

describe('a table dropped and created again while a snapshot waits for it', () => {
  it('the snapshot does not read the new table with the old snapshot: the client refetches and ends equal to the table', async () => {
    const table = 'recreated_mid_snapshot'
    await createTable(table)
    // Another shape puts the table in the publication (and its metadata in the catalog cache),
    // so the next shape's snapshot starts at once rather than waiting to add the table.
    await new Follower(() => sluice.shapeUrl(), { table, where: 'id > 10' }).catchUp()

    const ddl = await sluice.db.pool.connect()
    try {
      await ddl.query('BEGIN')
      await ddl.query(`DROP TABLE ${table}`)
      await ddl.query(`CREATE TABLE ${table} (id int PRIMARY KEY, a text, b int)`)
      await ddl.query(`INSERT INTO ${table} SELECT g, 'new' || g, g FROM generate_series(1, 47) g`)
      const { rows } = await ddl.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')
      const ddlPid = rows[0]!.pid

      const follower = new Follower(() => sluice.shapeUrl(), { table })
      const following = follower.catchUp()
      // The snapshot's backend waits for the DDL's ACCESS EXCLUSIVE lock.
      await waitFor(async () => {
        const waiting = await sluice.db.pool.query(
          `SELECT 1 FROM pg_locks WHERE locktype = 'relation' AND NOT granted AND pid <> $1 AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`,
          [ddlPid],
        )
        expect(waiting.rowCount).toBeGreaterThan(0)
      })
      await ddl.query('COMMIT')
      await following
      // Without the lock before the snapshot: up-to-date with 0 rows (the new table, read with
      // a snapshot from before its rows were written).
      expect(rowsOf(follower)).toHaveLength(47)
      expect(rowsOf(follower)).toEqual(await tableRows(table))
      expect(follower.refetches).toBeGreaterThanOrEqual(1)
    } finally {
      ddl.release()
    }
  })
})
