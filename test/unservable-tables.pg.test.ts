/**
 * Relations Sluice can never serve get a 400 that says why and what would fix it (issue 18):
 * on main they got `503 … retry shortly` (system catalogs, unlogged tables), a shape that never
 * changed (information_schema, a partitioned parent), or "does not exist" (views). A client
 * following the protocol retries a 503 forever; a 400 is final.
 */
import { randomBytes } from 'node:crypto'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Follower } from './support/follower.js'
import { startTestSluice, waitForReplication, type TestSluice } from './support/sluice.js'

let sluice: TestSluice
let tempSession: pg.Client
let tempSchema: string

beforeAll(async () => {
  sluice = await startTestSluice()
  await sluice.db.pool.query(`
    CREATE TABLE items (id int PRIMARY KEY, v text);
    CREATE UNLOGGED TABLE scratch (id int PRIMARY KEY);
    CREATE VIEW items_view AS SELECT * FROM items;
    CREATE MATERIALIZED VIEW items_mat AS SELECT * FROM items;
    CREATE SEQUENCE counter;
    CREATE FOREIGN DATA WRAPPER nowhere;
    CREATE SERVER elsewhere FOREIGN DATA WRAPPER nowhere;
    CREATE FOREIGN TABLE remote (id int) SERVER elsewhere;
    CREATE TABLE parted (id int, region text, PRIMARY KEY (region, id)) PARTITION BY LIST (region);
    CREATE TABLE parted_eu PARTITION OF parted FOR VALUES IN ('eu');
    INSERT INTO parted VALUES (1, 'eu');
  `)
  // A temporary table lives in its session's own schema while that session is open.
  tempSession = new pg.Client({ connectionString: sluice.db.url })
  await tempSession.connect()
  await tempSession.query('CREATE TEMPORARY TABLE mine (id int PRIMARY KEY)')
  const { rows } = await tempSession.query<{ schema: string }>('SELECT pg_my_temp_schema()::regnamespace::text AS schema')
  tempSchema = rows[0]!.schema
})

afterAll(async () => {
  await tempSession?.end()
  await sluice?.close()
})

async function tableError(table: string): Promise<{ status: number; retryAfter: string | null; reason: string }> {
  const response = await fetch(`${sluice.shapeUrl()}?table=${encodeURIComponent(table)}&offset=-1`)
  const body = (await response.json()) as { message: string; errors?: { table?: string[] } }
  return { status: response.status, retryAfter: response.headers.get('retry-after'), reason: body.errors?.table?.join(' ') ?? body.message }
}

describe('a relation Sluice can never serve gets its own 400', () => {
  const cases: [string, () => string, RegExp][] = [
    ['a system catalog', () => 'pg_catalog.pg_class', /"pg_catalog"\."pg_class" is a PostgreSQL system table: PostgreSQL never publishes/],
    ['a system catalog only superusers read', () => 'pg_catalog.pg_authid', /"pg_catalog"\."pg_authid" is a PostgreSQL system table/],
    ['an information_schema table', () => 'information_schema.sql_features', /"information_schema"\."sql_features" is a PostgreSQL system table/],
    ['an unlogged table', () => 'scratch', /"public"\."scratch" is UNLOGGED.*ALTER TABLE "public"\."scratch" SET LOGGED;/],
    ['a temporary table', () => `${tempSchema}.mine`, /is a temporary table: it belongs to one session/],
    ['a foreign table', () => 'remote', /"public"\."remote" is a foreign table/],
    ['a view', () => 'items_view', /"public"\."items_view" is a view: PostgreSQL replicates tables, not views/],
    ['a materialized view', () => 'items_mat', /"public"\."items_mat" is a materialized view/],
    ['a sequence', () => 'counter', /"public"\."counter" is a sequence, not a table/],
    ['a partitioned table', () => 'parted', /"public"\."parted" is a partitioned table: .*Request its partitions instead/],
    ['a missing table', () => 'nothing_here', /table "public"\."nothing_here" does not exist/],
  ]
  for (const [kind, table, reason] of cases) {
    it(kind, async () => {
      const answer = await tableError(table())
      expect(answer).toEqual({ status: 400, retryAfter: null, reason: expect.stringMatching(reason) })
    })
  }

  it('serves a partition itself, with its changes', async () => {
    const follower = new Follower(() => sluice.shapeUrl(), { table: 'parted_eu' })
    await follower.catchUp()
    await sluice.db.pool.query(`INSERT INTO parted VALUES (2, 'eu'); UPDATE parted SET id = 3 WHERE id = 1`)
    await waitForReplication(sluice)
    await follower.catchUp()
    expect(follower.sortedRows()).toEqual([
      { id: '2', region: 'eu' },
      { id: '3', region: 'eu' },
    ])
  })
})

describe('a partition whose changes the publication sends under its root\'s name', () => {
  it('gets a 400 naming the publication setting to change', async () => {
    await sluice.db.pool.query(`
      CREATE TABLE parted_us PARTITION OF parted FOR VALUES IN ('us');
      ALTER PUBLICATION ${sluice.config.publication} SET (publish_via_partition_root = true);
    `)
    try {
      const answer = await tableError('parted_us')
      expect(answer.status).toBe(400)
      expect(answer.reason).toMatch(/has publish_via_partition_root = true: .*ALTER PUBLICATION "[^"]+" SET \(publish_via_partition_root = false\);/)
    } finally {
      await sluice.db.pool.query(`ALTER PUBLICATION ${sluice.config.publication} SET (publish_via_partition_root = false)`)
    }
  })
})

describe('a table Sluice\'s role may not add to the publication', () => {
  const role = `sluice_limited_${randomBytes(4).toString('hex')}`
  let limited: TestSluice

  beforeAll(async () => {
    const { pool } = sluice.db
    await pool.query(`CREATE ROLE ${role} LOGIN REPLICATION PASSWORD 'pw'`)
    await pool.query(`GRANT SELECT ON items TO ${role}`)
    // The publication exists (a DBA made it) but belongs to someone else.
    const publication = `limited_${randomBytes(4).toString('hex')}`
    await pool.query(`CREATE PUBLICATION ${publication} WITH (publish = 'insert, update, delete, truncate')`)
    const url = new URL(sluice.db.url)
    url.username = role
    url.password = 'pw'
    limited = await startTestSluice({ publication }, { ...sluice.db, url: url.toString(), drop: async () => undefined })
  })

  afterAll(async () => {
    await limited?.close()
    await sluice.db.pool.query(`SELECT pg_drop_replication_slot($1)`, [limited.config.replicationSlot]).catch(() => undefined)
    await sluice.db.pool.query(`DROP OWNED BY ${role}; DROP ROLE IF EXISTS ${role}`)
  })

  it('gets a 400 naming the migration scripts to run', async () => {
    const response = await fetch(`${limited.shapeUrl()}?table=items&offset=-1`)
    expect(response.status).toBe(400)
    expect(response.headers.get('retry-after')).toBeNull()
    const body = (await response.json()) as { errors: { table: string[] } }
    expect(body.errors.table[0]).toMatch(/may not add "public"\."items" to the publication/)
    expect(body.errors.table[0]).toMatch(/-f migrations\/001_sluice_publication\.sql -f migrations\/002_replica_identity_full\.sql/)
  })
})
