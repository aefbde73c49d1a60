/**
 * Row identity without a primary key (issue 18). On main a table without one was keyed on all
 * its columns: identical rows shared a key, so after an update of one of two twins and a delete
 * the client held 1 row where the table had 2, and nothing said so. Now the key is the replica
 * identity index or a unique index over NOT NULL columns; without either the table gets a 400
 * naming the fix, unless SLUICE_ALLOW_KEYLESS_TABLES opts into the all-columns key.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Follower, type WireMessage } from './support/follower.js'
import { startTestSluice, waitForReplication, type TestSluice } from './support/sluice.js'

async function shapeError(sluice: TestSluice, table: string): Promise<{ status: number; reason: string | undefined }> {
  const response = await fetch(`${sluice.shapeUrl()}?table=${table}&offset=-1`)
  const body = (await response.json()) as { errors?: { table?: string[] } }
  return { status: response.status, reason: body.errors?.table?.[0] }
}

async function snapshotOf(sluice: TestSluice, table: string): Promise<WireMessage[]> {
  const response = await fetch(`${sluice.shapeUrl()}?table=${table}&offset=-1`)
  expect(response.status).toBe(200)
  return ((await response.json()) as WireMessage[]).filter((m) => m.key !== undefined)
}

async function tableRows(sluice: TestSluice, sql: string): Promise<Record<string, string | null>[]> {
  return (await sluice.db.pool.query<Record<string, string | null>>(sql)).rows
}

describe('by default', () => {
  let sluice: TestSluice
  beforeAll(async () => {
    sluice = await startTestSluice()
    await sluice.db.pool.query(`
      CREATE TABLE nopk (a int, b text);
      INSERT INTO nopk VALUES (1, 'x'), (1, 'x'), (2, 'y');
      CREATE TABLE by_unique (code text NOT NULL UNIQUE, n int, note text);
      INSERT INTO by_unique VALUES ('a', 1, 'first'), ('b', 2, 'second');
      CREATE TABLE by_replica_index (a int NOT NULL, b int NOT NULL, v text);
      CREATE UNIQUE INDEX by_replica_index_a ON by_replica_index (a);
      CREATE UNIQUE INDEX by_replica_index_b ON by_replica_index (b);
      ALTER TABLE by_replica_index REPLICA IDENTITY USING INDEX by_replica_index_b;
      INSERT INTO by_replica_index VALUES (1, 10, 'p');
      CREATE TABLE nullable_unique (a int UNIQUE, b text);
      CREATE TABLE partial_unique (a int NOT NULL, b text);
      CREATE UNIQUE INDEX partial_unique_a ON partial_unique (a) WHERE a > 0;
      CREATE TABLE deferrable_unique (a int NOT NULL UNIQUE DEFERRABLE, b text);
      CREATE TABLE deferrable_pk (id int PRIMARY KEY DEFERRABLE INITIALLY DEFERRED, v text);
    `)
  })
  afterAll(async () => {
    await sluice?.close()
  })

  it('answers 400 for a table without any row identity, naming the fixes', async () => {
    const { status, reason } = await shapeError(sluice, 'nopk')
    expect(status).toBe(400)
    expect(reason).toContain('"public"."nopk" has no primary key, replica identity index or unique index over NOT NULL columns')
    expect(reason).toContain('ALTER TABLE "public"."nopk" ADD PRIMARY KEY (<columns>)')
    expect(reason).toContain('ALTER TABLE "public"."nopk" REPLICA IDENTITY USING INDEX <index>')
    expect(reason).toContain('SLUICE_ALLOW_KEYLESS_TABLES=true')
  })

  it('does not take a unique index that allows NULLs, is partial or is deferrable as the identity', async () => {
    for (const table of ['nullable_unique', 'partial_unique', 'deferrable_unique']) {
      expect((await shapeError(sluice, table)).reason, table).toMatch(/has no primary key/)
    }
  })

  it('refuses a DEFERRABLE primary key, which lets two rows share a key inside a transaction', async () => {
    const { status, reason } = await shapeError(sluice, 'deferrable_pk')
    expect(status).toBe(400)
    expect(reason).toMatch(/^"public"\."deferrable_pk" has a DEFERRABLE primary key: .*Re-create it NOT DEFERRABLE/)
  })

  it('keys rows on a unique index over NOT NULL columns, and follows updates of the other columns', async () => {
    const snapshot = await snapshotOf(sluice, 'by_unique')
    expect(snapshot.map((m) => m.key)).toEqual(['"public"."by_unique"/"a"', '"public"."by_unique"/"b"'])
    const follower = new Follower(() => sluice.shapeUrl(), { table: 'by_unique' })
    await follower.catchUp()
    await sluice.db.pool.query(`UPDATE by_unique SET n = 5 WHERE code = 'a'; UPDATE by_unique SET code = 'c' WHERE code = 'b'; INSERT INTO by_unique VALUES ('d', 4, null)`)
    await waitForReplication(sluice)
    await follower.catchUp()
    expect(follower.sortedRows()).toEqual(await tableRows(sluice, `SELECT code, n::text, note FROM by_unique ORDER BY code`))
    expect([...follower.rows.keys()].sort()).toEqual(['"public"."by_unique"/"a"', '"public"."by_unique"/"c"', '"public"."by_unique"/"d"'])
  })

  it('prefers the replica identity index to another unique index', async () => {
    const response = await fetch(`${sluice.shapeUrl()}?table=by_replica_index&offset=-1`)
    expect(JSON.parse(response.headers.get('electric-schema')!)).toMatchObject({ b: { pk_index: 0 } })
    const rows = ((await response.json()) as WireMessage[]).filter((m) => m.key !== undefined)
    expect(rows.map((m) => m.key)).toEqual(['"public"."by_replica_index"/"10"'])
  })
})

describe('a row identity that changes while Sluice is down', () => {
  let sluice: TestSluice
  beforeAll(async () => {
    sluice = await startTestSluice()
    // Keyed on the replica identity index (b); REPLICA IDENTITY FULL then clears that mark, and
    // after a restart the narrowest unique index by name (a) is the identity.
    await sluice.db.pool.query(`
      CREATE TABLE moved (a int NOT NULL, b int NOT NULL, v text);
      CREATE UNIQUE INDEX moved_a ON moved (a);
      CREATE UNIQUE INDEX moved_b ON moved (b);
      ALTER TABLE moved REPLICA IDENTITY USING INDEX moved_b;
      INSERT INTO moved VALUES (1, 10, 'p'), (2, 20, 'q');
    `)
  })
  afterAll(async () => {
    await sluice?.close()
  })

  it('rotates the shape at the restart instead of continuing its log under other keys', async () => {
    const follower = new Follower(() => sluice.shapeUrl(), { table: 'moved' })
    await follower.catchUp()
    expect([...follower.rows.keys()].sort()).toEqual(['"public"."moved"/"10"', '"public"."moved"/"20"'])
    await sluice.restart()
    await sluice.db.pool.query(`UPDATE moved SET v = 'r' WHERE a = 1`)
    await waitForReplication(sluice)
    await follower.catchUp()
    expect(follower.refetches).toBe(1)
    expect([...follower.rows.keys()].sort()).toEqual(['"public"."moved"/"1"', '"public"."moved"/"2"'])
    expect(follower.sortedRows()).toEqual(await tableRows(sluice, `SELECT a::text, b::text, v FROM moved ORDER BY a`))
  })
})

describe('with SLUICE_ALLOW_KEYLESS_TABLES=true', () => {
  let sluice: TestSluice
  beforeAll(async () => {
    sluice = await startTestSluice({ allowKeylessTables: true })
    await sluice.db.pool.query(`
      CREATE TABLE nopk (a int, b text);
      INSERT INTO nopk VALUES (1, 'x'), (1, 'x'), (2, 'y');
    `)
  })
  afterAll(async () => {
    await sluice?.close()
  })

  it('keys a table with a DEFERRABLE primary key on all columns, so swapping two keys in a transaction keeps both rows', async () => {
    await sluice.db.pool.query(`CREATE TABLE deferrable_pk (id int PRIMARY KEY DEFERRABLE INITIALLY DEFERRED, v text); INSERT INTO deferrable_pk VALUES (1, 'a'), (2, 'b')`)
    const follower = new Follower(() => sluice.shapeUrl(), { table: 'deferrable_pk' })
    await follower.catchUp()
    await sluice.db.pool.query(`BEGIN; UPDATE deferrable_pk SET id = 2 WHERE v = 'a'; UPDATE deferrable_pk SET id = 1 WHERE v = 'b'; COMMIT`)
    await waitForReplication(sluice)
    await follower.catchUp()
    expect(follower.sortedRows()).toEqual([{ id: '1', v: 'b' }, { id: '2', v: 'a' }])
  })

  it('keys rows on all columns: identical rows reach the client once, and it never holds a row the table lacks', async () => {
    const snapshot = await snapshotOf(sluice, 'nopk')
    expect(snapshot.map((m) => m.key).sort()).toEqual(['"public"."nopk"/"1"/"x"', '"public"."nopk"/"2"/"y"'])

    const follower = new Follower(() => sluice.shapeUrl(), { table: 'nopk' })
    await follower.catchUp()
    await sluice.db.pool.query(`UPDATE nopk SET b = 'z' WHERE ctid = (SELECT ctid FROM nopk WHERE a = 1 LIMIT 1)`)
    await sluice.db.pool.query(`DELETE FROM nopk WHERE a = 2`)
    await waitForReplication(sluice)
    await follower.catchUp()

    const table = await tableRows(sluice, `SELECT a::text, b FROM nopk ORDER BY a, b`)
    expect(table).toEqual([{ a: '1', b: 'x' }, { a: '1', b: 'z' }])
    // Every row the client holds is in the table…
    for (const row of follower.rows.values()) expect(table).toContainEqual(row)
    // …but the update of one twin removed their shared key: the README's caveat.
    expect(follower.sortedRows()).toEqual([{ a: '1', b: 'z' }])
  })
})
