import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import pg from 'pg'
import { randomBytes } from 'node:crypto'
import { TableError, UnavailableError } from '../src/errors.js'
import { loadTableInfo, type TableInfo } from '../src/pg/introspect.js'
import { ensurePublication, ensureTableReplicated, waitForTransactionsBefore } from '../src/pg/publication.js'
import type { TableName } from '../src/pg/table-name.js'
import { ManualClock } from './support/clock.js'
import { createTestDatabase, type TestDatabase } from './support/database.js'
import { waitFor } from './support/wait.js'

let db: TestDatabase
const role = `sluice_app_${randomBytes(4).toString('hex')}`
const password = 'pw-for-tests'
const clients: pg.Client[] = []

beforeAll(async () => {
  db = await createTestDatabase()
  await db.pool.query(`CREATE ROLE ${role} LOGIN PASSWORD '${password}'`)
})

afterAll(async () => {
  for (const client of clients) await client.end().catch(() => undefined)
  if (!db) return
  const adminUrl = new URL(db.url)
  adminUrl.pathname = '/postgres'
  await db.drop()
  // Only once the database is gone does the role own nothing any more.
  const admin = new pg.Client({ connectionString: adminUrl.toString() })
  await admin.connect()
  await admin.query(`DROP ROLE IF EXISTS ${role}`)
  await admin.end()
})

async function connect(as?: string): Promise<pg.Client> {
  const url = new URL(db.url)
  if (as) {
    url.username = as
    url.password = password
  }
  const client = new pg.Client({ connectionString: url.toString() })
  await client.connect()
  clients.push(client)
  return client
}

async function tableInfo(name: string, schema = 'public'): Promise<TableInfo> {
  const info = await loadTableInfo(db.pool, { schema, name })
  if (!info) throw new Error(`no table ${schema}.${name}`)
  return info
}

async function replicaIdentities(...names: string[]): Promise<Record<string, string>> {
  const { rows } = await db.pool.query<{ relname: string; relreplident: string }>(
    `SELECT relname, relreplident FROM pg_class WHERE relname = ANY($1) ORDER BY relname`,
    [names],
  )
  return Object.fromEntries(rows.map((r) => [r.relname, r.relreplident]))
}

async function publishedTables(publication: string): Promise<TableName[]> {
  const { rows } = await db.pool.query<{ schema: string; name: string }>(
    `SELECT n.nspname AS schema, c.relname AS name
       FROM pg_publication_rel r JOIN pg_publication p ON p.oid = r.prpubid
       JOIN pg_class c ON c.oid = r.prrelid JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE p.pubname = $1 ORDER BY 1, 2`,
    [publication],
  )
  return rows
}

async function currentXid(client: pg.Client): Promise<bigint> {
  const { rows } = await client.query<{ xid: string }>('SELECT pg_current_xact_id()::text AS xid')
  return BigInt(rows[0]!.xid)
}

/** Settles to 'pending' when `promise` has not settled within `ms`. */
async function stateAfter(promise: Promise<unknown>, ms: number): Promise<'settled' | 'pending'> {
  const timeout = new Promise<'pending'>((resolve) => setTimeout(() => resolve('pending'), ms))
  return Promise.race([promise.then(() => 'settled' as const), timeout])
}

describe('ensurePublication', () => {
  it('creates an empty publication of every change kind, once', async () => {
    await ensurePublication(db.pool, 'Pub One')
    await ensurePublication(db.pool, 'Pub One')
    const { rows } = await db.pool.query(
      `SELECT pubinsert, pubupdate, pubdelete, pubtruncate, puballtables FROM pg_publication WHERE pubname = 'Pub One'`,
    )
    expect(rows).toEqual([{ pubinsert: true, pubupdate: true, pubdelete: true, pubtruncate: true, puballtables: false }])
    expect(await publishedTables('Pub One')).toEqual([])
  })

  it('widens a publication that leaves out some change kinds', async () => {
    await db.pool.query(`CREATE PUBLICATION narrow WITH (publish = 'insert')`)
    await ensurePublication(db.pool, 'narrow')
    const { rows } = await db.pool.query(
      `SELECT pubinsert, pubupdate, pubdelete, pubtruncate FROM pg_publication WHERE pubname = 'narrow'`,
    )
    expect(rows).toEqual([{ pubinsert: true, pubupdate: true, pubdelete: true, pubtruncate: true }])
  })
})

describe('ensureTableReplicated', () => {
  it('adds the table with REPLICA IDENTITY FULL, creating the publication, then finds nothing to do', async () => {
    await db.pool.query(`CREATE TABLE items (id int PRIMARY KEY, title text)`)
    const info = await tableInfo('items')

    const first = await ensureTableReplicated(db.pool, 'sluice', info)
    expect(first.changed).toBe(true)
    expect(await replicaIdentities('items')).toEqual({ items: 'f' })
    expect(await publishedTables('sluice')).toEqual([{ schema: 'public', name: 'items' }])

    const second = await ensureTableReplicated(db.pool, 'sluice', info)
    expect(second.changed).toBe(false)
    // Nothing changed, so nothing newer than what is running now needs waiting for. (Compared
    // with the cluster's next xid, not first.xid: other suites take xids in this cluster too.)
    const { rows } = await db.pool.query<{ next: string }>(`SELECT pg_snapshot_xmax(pg_current_snapshot())::text AS next`)
    expect(second.xid).toBeLessThanOrEqual(BigInt(rows[0]!.next))
  })

  it('returns an xid past every transaction that had one when the change committed', async () => {
    await db.pool.query(`CREATE TABLE later (id int PRIMARY KEY)`)
    const other = await connect()
    await other.query('BEGIN')
    const otherXid = await currentXid(other)
    const { xid, changed } = await ensureTableReplicated(db.pool, 'sluice', await tableInfo('later'))
    expect(changed).toBe(true)
    expect(xid).toBeGreaterThan(otherXid)
    await other.query('COMMIT')
  })

  it('only sets the replica identity when the table is already published', async () => {
    await db.pool.query(`CREATE TABLE half (id int PRIMARY KEY); CREATE PUBLICATION half_pub FOR TABLE half`)
    const result = await ensureTableReplicated(db.pool, 'half_pub', await tableInfo('half'))
    expect(result.changed).toBe(true)
    expect(await replicaIdentities('half')).toEqual({ half: 'f' })
    expect(await publishedTables('half_pub')).toEqual([{ schema: 'public', name: 'half' }])
  })

  it('treats FOR ALL TABLES publications as including the table', async () => {
    await db.pool.query(`CREATE TABLE everywhere (id int PRIMARY KEY) ; ALTER TABLE everywhere REPLICA IDENTITY FULL`)
    await db.pool.query(`CREATE PUBLICATION all_pub FOR ALL TABLES`)
    const result = await ensureTableReplicated(db.pool, 'all_pub', await tableInfo('everywhere'))
    expect(result.changed).toBe(false)
  })

  it('quotes names and sets every partition of a partitioned table', async () => {
    await db.pool.query(`
      CREATE SCHEMA "My App";
      CREATE TABLE "My App"."Parted ""T""" (id int, region text, PRIMARY KEY (region, id)) PARTITION BY LIST (region);
      CREATE TABLE "My App".part_eu PARTITION OF "My App"."Parted ""T""" FOR VALUES IN ('eu');
      CREATE TABLE "My App".part_us PARTITION OF "My App"."Parted ""T""" FOR VALUES IN ('us') PARTITION BY LIST (id);
      CREATE TABLE "My App".part_us_1 PARTITION OF "My App".part_us FOR VALUES IN (1);
    `)
    const result = await ensureTableReplicated(db.pool, 'sluice', await tableInfo('Parted "T"', 'My App'))
    expect(result.changed).toBe(true)
    expect(await replicaIdentities('Parted "T"', 'part_eu', 'part_us', 'part_us_1')).toEqual({
      'Parted "T"': 'f',
      part_eu: 'f',
      part_us: 'f',
      part_us_1: 'f',
    })
    expect(await publishedTables('sluice')).toContainEqual({ schema: 'My App', name: 'Parted "T"' })
  })

  it('tells the DBA which migrations to run when the role may not alter the table', async () => {
    await db.pool.query(`CREATE TABLE guarded (id int PRIMARY KEY); CREATE PUBLICATION guarded_pub`)
    const info = await tableInfo('guarded')
    const app = await connect(role)

    const failure = await ensureTableReplicated(app, 'guarded_pub', info).catch((error: unknown) => error)
    expect(failure).toBeInstanceOf(TableError)
    expect((failure as TableError).code).toBe('table_not_permitted')
    expect((failure as TableError).cause).toMatchObject({ code: '42501' })
    const reasons = [(failure as TableError).message]
    expect(reasons?.[0]).toMatch(/^Sluice's database role may not add "public"."guarded" to the publication "guarded_pub"/)
    expect(reasons?.[0]).toContain('PostgreSQL said: must be owner of')
    expect(reasons?.[0]).toContain(
      'psql -v publication=guarded_pub -v schema=public -v table=guarded ' +
        '-f migrations/001_sluice_publication.sql -f migrations/002_replica_identity_full.sql',
    )
    expect(reasons?.[0]).toContain('ALTER TABLE "public"."guarded" REPLICA IDENTITY FULL;')

    // What the migrations do; afterwards the role has nothing left to change.
    await db.pool.query(`ALTER PUBLICATION guarded_pub ADD TABLE guarded; ALTER TABLE guarded REPLICA IDENTITY FULL`)
    expect((await ensureTableReplicated(app, 'guarded_pub', info)).changed).toBe(false)
  })

  it('gives up with 503 instead of queueing behind a long writer for long', async () => {
    await db.pool.query(`CREATE TABLE busy (id int PRIMARY KEY)`)
    const writer = await connect()
    await writer.query('BEGIN')
    await writer.query('INSERT INTO busy VALUES (1)')
    const info = await tableInfo('busy')
    const startedAt = Date.now()
    // 300 ms stands for the 5 s default, so the test need not wait that long.
    const failure = await ensureTableReplicated(db.pool, 'busy_pub', info, 300).catch((e: unknown) => e)
    expect(failure).toBeInstanceOf(UnavailableError)
    // It queued behind the writer for the whole lock timeout rather than giving up at once.
    expect(Date.now() - startedAt).toBeGreaterThanOrEqual(300)
    expect(await publishedTables('busy_pub')).toEqual([])
    await writer.query('COMMIT')
    expect((await ensureTableReplicated(db.pool, 'busy_pub', info)).changed).toBe(true)
  })

  it('changes all or nothing', async () => {
    // The role owns the root and may create publications, but not one partition: adding the
    // root to the publication succeeds, the partition's REPLICA IDENTITY fails.
    await db.pool.query(`
      GRANT CREATE ON DATABASE ${db.name} TO ${role};
      CREATE TABLE owned (id int PRIMARY KEY) PARTITION BY RANGE (id);
      CREATE TABLE owned_low PARTITION OF owned FOR VALUES FROM (0) TO (10);
      ALTER TABLE owned OWNER TO ${role};
      ALTER TABLE owned_low OWNER TO postgres;
    `)
    const app = await connect(role)
    const failure = await ensureTableReplicated(app, 'app_pub', await tableInfo('owned')).catch((e: unknown) => e)
    expect(failure).toMatchObject({ name: 'TableError', code: 'table_not_permitted' })
    expect(await publishedTables('app_pub')).toEqual([])
    expect(await replicaIdentities('owned', 'owned_low')).toEqual({ owned: 'd', owned_low: 'd' })
    // The failed transaction is over: the connection is usable.
    expect((await app.query('SELECT 1 AS one')).rows).toEqual([{ one: 1 }])
  })
})

describe('waitForTransactionsBefore', () => {
  it('waits for a transaction that wrote before the table was published', async () => {
    // Already FULL: REPLICA IDENTITY would wait for the writer's lock, ADD TABLE does not.
    await db.pool.query(`CREATE TABLE racing (id int PRIMARY KEY); ALTER TABLE racing REPLICA IDENTITY FULL`)
    // The publication must be older than the slot's start, or pgoutput cannot find it.
    await ensurePublication(db.pool, 'racing_pub')
    await db.pool.query(`SELECT pg_create_logical_replication_slot('racing_slot', 'pgoutput')`)
    const writer = await connect()
    await writer.query('BEGIN')
    await writer.query('INSERT INTO racing VALUES (1)')

    const { xid } = await ensureTableReplicated(db.pool, 'racing_pub', await tableInfo('racing'))
    const waiting = waitForTransactionsBefore(db.pool, xid)
    expect(await stateAfter(waiting, 300)).toBe('pending')

    await writer.query('INSERT INTO racing VALUES (2)')
    await writer.query('COMMIT')
    // Settles once the writer has committed: awaited, not timed (a busy machine took over 2 s).
    await waiting

    // The PostgreSQL behaviour the wait exists for: pgoutput drops the row written before the
    // table joined the publication, though its transaction committed after. Because we waited,
    // that transaction is visible to any snapshot taken now, so a shape still gets the row.
    await db.pool.query('INSERT INTO racing VALUES (3)')
    const { rows } = await db.pool.query<{ id: string }>(
      `SELECT encode(substr(data, length(data)), 'escape') AS id
         FROM pg_logical_slot_get_binary_changes('racing_slot', NULL, NULL,
                'proto_version', '1', 'publication_names', 'racing_pub')
        WHERE substr(data, 1, 1) = 'I'::bytea`,
    )
    expect(rows.map((r) => r.id)).toEqual(['2', '3'])
    await db.pool.query(`SELECT pg_drop_replication_slot('racing_slot')`)
  })

  it('returns at once when nothing changed, even with transactions open', async () => {
    await db.pool.query(`CREATE TABLE settled (id int PRIMARY KEY)`)
    const info = await tableInfo('settled')
    await ensureTableReplicated(db.pool, 'sluice', info)
    const other = await connect()
    await other.query('BEGIN')
    await currentXid(other)
    const again = await ensureTableReplicated(db.pool, 'sluice', info)
    expect(again.changed).toBe(false)
    expect(await stateAfter(waitForTransactionsBefore(db.pool, again.xid), 1_000)).toBe('settled')
    await other.query('COMMIT')
  })

  it('reports every 5 seconds while it waits', async () => {
    const other = await connect()
    await other.query('BEGIN')
    const otherXid = await currentXid(other)
    const reports: number[] = []
    const clock = new ManualClock()
    const waiting = waitForTransactionsBefore(db.pool, otherXid + 1n, (waitedMs) => reports.push(waitedMs), clock.now)
    // A poll that reads the clock decides on its report at once, before the next poll.
    clock.advance(4_999)
    await clock.read()
    expect(reports).toEqual([])
    clock.advance(1)
    await waitFor(() => expect(reports).toEqual([5_000]))
    clock.advance(4_999)
    await clock.read()
    expect(reports).toEqual([5_000])
    clock.advance(1)
    await waitFor(() => expect(reports).toEqual([5_000, 10_000]))
    await other.query('COMMIT')
    await waiting
    expect(reports).toEqual([5_000, 10_000])
  })
})
