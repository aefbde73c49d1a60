/**
 * Puts a table into Sluice's publication with REPLICA IDENTITY FULL (so updates and deletes
 * carry the whole old row), and waits out the transactions that pgoutput would otherwise drop.
 *
 * pgoutput decodes each transaction with the catalog snapshot of its first change: a
 * transaction that wrote before the table joined the publication is skipped for that table
 * even if it commits afterwards. A snapshot taken while such a transaction is open would
 * expect its changes from the log, and they would never come. So, like CREATE INDEX
 * CONCURRENTLY, we wait until every transaction that had an xid when the ALTERs committed
 * has ended before a shape's snapshot is taken (docs/ARCHITECTURE.md I2).
 */
import { ERROR_CODES, StartupCheckError, TableError, UnavailableError } from '../errors.js'
import { qualifiedName, quoteIdent } from './sql.js'
import type { TableName } from './table-name.js'
import type { Queryable, TableInfo } from './introspect.js'

export const PUBLISH_ACTIONS = 'insert, update, delete, truncate'

/** How long the ALTERs may queue behind other sessions' locks before we give up and retry later. */
export const ALTER_LOCK_TIMEOUT_MS = 5_000

export const WAIT_POLL_MS = 50
export const WAIT_REPORT_MS = 5_000

/** Result of {@link ensureTableReplicated}. */
export interface ReplicationChange {
  /** Whether anything had to be altered. */
  readonly changed: boolean
  /**
   * Pass to {@link waitForTransactionsBefore} before taking a snapshot. When something changed
   * it is the next xid after the ALTERs committed; otherwise the oldest running xid, so the
   * wait returns at once.
   */
  readonly xid: bigint
}

const SQLSTATE = {
  insufficientPrivilege: '42501',
  duplicateObject: '42710',
  lockNotAvailable: '55P03',
} as const

/** Concurrent Sluice sessions may add the same table at once; the loser re-reads and retries. */
const MAX_ATTEMPTS = 3

/**
 * Creates the publication (empty, publishing inserts, updates, deletes and truncates) when it
 * does not exist, and widens an existing one that misses any of those actions.
 * @throws StartupCheckError naming the migration to run when the role may not do it.
 */
export async function ensurePublication(db: Queryable, publication: string): Promise<void> {
  try {
    await createOrWidenPublication(db, publication)
  } catch (error) {
    if (!isSqlState(error, SQLSTATE.insufficientPrivilege)) throw error
    throw new StartupCheckError(
      `Sluice's database role may not create or alter the publication ${quoteIdent(publication)} ` +
        `(PostgreSQL said: ${error.message}). A DBA must run:\n\n` +
        `    psql -v publication=${shellWord(publication)} -f migrations/001_sluice_publication.sql`,
      { cause: error },
    )
  }
}

/**
 * Makes `table` part of the publication and REPLICA IDENTITY FULL (with every partition of a
 * partitioned table), in one transaction; creates the publication when it is missing.
 * @returns whether it changed anything, and the xid to wait for before snapshotting.
 * @throws TableError (`table_not_permitted`) when the role may not make the change (a DBA must run the migrations).
 * @throws UnavailableError when other sessions' locks keep the ALTERs waiting longer than `lockTimeoutMs`.
 */
export async function ensureTableReplicated(
  db: Queryable,
  publication: string,
  table: TableInfo,
  lockTimeoutMs = ALTER_LOCK_TIMEOUT_MS,
): Promise<ReplicationChange> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await alterWhereNeeded(db, publication, table, lockTimeoutMs)
    } catch (error) {
      if (isSqlState(error, SQLSTATE.duplicateObject) && attempt < MAX_ATTEMPTS) continue
      if (isSqlState(error, SQLSTATE.insufficientPrivilege)) {
        throw new TableError(ERROR_CODES.tableNotPermitted, permissionAdvice(publication, table.table, error.message), { cause: error })
      }
      if (isSqlState(error, SQLSTATE.lockNotAvailable)) {
        throw new UnavailableError(
          `${qualifiedName(table.table)} is locked by other sessions; could not add it to the publication`,
          { cause: error },
        )
      }
      throw error
    }
  }
}

/**
 * Waits until every transaction with an xid below `xid` has ended, polling
 * `pg_current_snapshot()` every 50 ms; calls `onWait` every 5 s while it waits so a stuck
 * transaction (say an idle-in-transaction session, or a prepared transaction) gets noticed.
 * `now` is the clock those 5 s are measured by (tests move it).
 */
export async function waitForTransactionsBefore(
  db: Queryable,
  xid: bigint,
  onWait?: (waitedMs: number) => void,
  now: () => number = Date.now,
): Promise<void> {
  const startedAt = now()
  let nextReportMs = WAIT_REPORT_MS
  for (;;) {
    const result = await db.query<{ xmin: string }>(
      'SELECT pg_catalog.pg_snapshot_xmin(pg_catalog.pg_current_snapshot())::text AS xmin',
    )
    const xmin = BigInt(result.rows[0]?.xmin ?? '0')
    if (xmin >= xid) return
    await sleep(WAIT_POLL_MS)
    const waitedMs = now() - startedAt
    if (waitedMs >= nextReportMs) {
      onWait?.(waitedMs)
      nextReportMs += WAIT_REPORT_MS
    }
  }
}

async function alterWhereNeeded(db: Queryable, publication: string, info: TableInfo, lockTimeoutMs: number): Promise<ReplicationChange> {
  const state = await readState(db, publication, info)
  if (state.published && state.notFull.length === 0) {
    return { changed: false, xid: BigInt(state.xmin) }
  }
  if (!state.publicationExists) await createOrWidenPublication(db, publication)

  const statements = [`SET LOCAL lock_timeout = ${lockTimeoutMs}`]
  if (!state.published) {
    statements.push(`ALTER PUBLICATION ${quoteIdent(publication)} ADD TABLE ${qualifiedName(state.table)}`)
  }
  for (const relation of state.notFull) {
    statements.push(`ALTER TABLE ${qualifiedName(relation)} REPLICA IDENTITY FULL`)
  }
  // No parameters: one simple-protocol message, which PostgreSQL runs as one implicit
  // transaction on one connection (a pool could not give us that for separate queries),
  // and which it rolls back as a whole if any statement fails.
  await db.query(statements.join(';\n'))

  const after = await db.query<{ xmax: string }>(
    'SELECT pg_catalog.pg_snapshot_xmax(pg_catalog.pg_current_snapshot())::text AS xmax',
  )
  return { changed: true, xid: BigInt(after.rows[0]?.xmax ?? '0') }
}

interface ReplicationState {
  readonly table: TableName
  readonly publicationExists: boolean
  readonly published: boolean
  /** The table and its partitions that are not REPLICA IDENTITY FULL yet. */
  readonly notFull: readonly TableName[]
  readonly xmin: string
}

async function readState(db: Queryable, publication: string, info: TableInfo): Promise<ReplicationState> {
  // By OID, and with names read back from the catalog: the table may have been renamed since
  // `info` was loaded, and a new table under the old name must not be altered instead.
  const result = await db.query<{
    schema: string
    name: string
    publication_exists: boolean
    published: boolean
    not_full: { schema: string; name: string }[]
    xmin: string
    published_via_root: boolean
  }>(
    `SELECT n.nspname AS schema, c.relname AS name,
            p.oid IS NOT NULL AS publication_exists,
            COALESCE(p.puballtables, false)
              OR EXISTS (SELECT 1 FROM pg_catalog.pg_publication_rel r WHERE r.prpubid = p.oid AND r.prrelid = c.oid)
              OR EXISTS (SELECT 1 FROM pg_catalog.pg_publication_tables t
                          WHERE t.pubname = $1 AND t.schemaname = n.nspname AND t.tablename = c.relname) AS published,
            (SELECT COALESCE(json_agg(json_build_object('schema', pn.nspname, 'name', pc.relname) ORDER BY pc.oid <> c.oid, pc.relname), '[]')
               FROM pg_catalog.pg_class pc
               JOIN pg_catalog.pg_namespace pn ON pn.oid = pc.relnamespace
              WHERE (pc.oid = c.oid OR pc.oid IN (SELECT relid FROM pg_catalog.pg_partition_tree(c.oid)))
                AND pc.relkind IN ('r', 'p') AND pc.relreplident <> 'f') AS not_full,
            pg_catalog.pg_snapshot_xmin(pg_catalog.pg_current_snapshot())::text AS xmin,
            COALESCE(p.pubviaroot, false) AND c.relispartition AS published_via_root
       FROM pg_catalog.pg_class c
       JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
       LEFT JOIN pg_catalog.pg_publication p ON p.pubname = $1
      WHERE c.oid = $2`,
    [publication, info.oid],
  )
  const row = result.rows[0]
  if (!row) throw new TableError(ERROR_CODES.tableNotFound, `table ${qualifiedName(info.table)} no longer exists`)
  if (row.published_via_root) {
    throw new TableError(
      ERROR_CODES.tableNotServable,
      `the publication ${quoteIdent(publication)} has publish_via_partition_root = true: PostgreSQL then publishes the changes of ` +
        `the partition ${qualifiedName(info.table)} under its root's name, and they would never reach its shape. ` +
        `ALTER PUBLICATION ${quoteIdent(publication)} SET (publish_via_partition_root = false);`,
    )
  }
  return {
    table: { schema: row.schema, name: row.name },
    publicationExists: row.publication_exists,
    published: row.published,
    notFull: row.not_full,
    xmin: row.xmin,
  }
}

async function createOrWidenPublication(db: Queryable, publication: string): Promise<void> {
  const existing = await db.query<{ complete: boolean }>(
    `SELECT pubinsert AND pubupdate AND pubdelete AND pubtruncate AS complete
       FROM pg_catalog.pg_publication WHERE pubname = $1`,
    [publication],
  )
  const row = existing.rows[0]
  if (row?.complete) return
  if (row) {
    await db.query(`ALTER PUBLICATION ${quoteIdent(publication)} SET (publish = '${PUBLISH_ACTIONS}')`)
    return
  }
  try {
    await db.query(`CREATE PUBLICATION ${quoteIdent(publication)} WITH (publish = '${PUBLISH_ACTIONS}')`)
  } catch (error) {
    // Another session created it between our check and our CREATE.
    if (!isSqlState(error, SQLSTATE.duplicateObject)) throw error
  }
}

function permissionAdvice(publication: string, table: TableName, reason: string): string {
  const target = qualifiedName(table)
  return (
    `Sluice's database role may not add ${target} to the publication ${quoteIdent(publication)} or make it ` +
    `REPLICA IDENTITY FULL (PostgreSQL said: ${reason}). A DBA must run ` +
    'migrations/001_sluice_publication.sql and migrations/002_replica_identity_full.sql:\n' +
    `psql -v publication=${shellWord(publication)} -v schema=${shellWord(table.schema)} -v table=${shellWord(table.name)} ` +
    '-f migrations/001_sluice_publication.sql -f migrations/002_replica_identity_full.sql\n' +
    `or in SQL: ALTER PUBLICATION ${quoteIdent(publication)} ADD TABLE ${target}; ` +
    `ALTER TABLE ${target} REPLICA IDENTITY FULL;`
  )
}

/** Quotes a value for a POSIX shell command line when it needs it. */
function shellWord(value: string): string {
  return /^[A-Za-z0-9_.-]+$/.test(value) ? value : `'${value.replaceAll("'", `'\\''`)}'`
}

/** By shape rather than `instanceof`, so errors from a second copy of `pg` are recognised too. */
function isSqlState(error: unknown, code: string): error is Error & { code: string } {
  return error instanceof Error && (error as { code?: unknown }).code === code
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}
