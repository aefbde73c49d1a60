/**
 * Takes shapes' snapshots (docs/ARCHITECTURE.md I1–I3): a REPEATABLE READ READ ONLY transaction
 * that first reads `pg_current_snapshot()` and the WAL position after it — handed to the caller
 * at once, so replicated transactions can be filtered while rows are still streaming — then
 * streams every row as wire JSON through binary COPY, in batches, with backpressure from storage.
 * A snapshot that misses transactions already replicated is dropped and taken again once they
 * are visible (`unconfirmed-commits.ts`).
 *
 * Several shapes of one table can share the transaction (`snapshot-batch.ts`, I21): one query,
 * a `UNION ALL` of each shape's own `SELECT`, every row prefixed with its shape's number, so each
 * shape gets exactly its rows and all of them the same snapshot and WAL position.
 *
 * The table is locked (ACCESS SHARE) before the transaction's snapshot is taken, and must still
 * be the one the shapes were bound to: otherwise a concurrent DROP and CREATE (or a rewrite) would
 * make the COPY wait for the DDL, then read the new table with the older snapshot — without
 * the rows the DDL's transaction wrote.
 */
import { setTimeout as sleep } from 'node:timers/promises'
import type pg from 'pg'
import { to as copyTo } from 'pg-copy-streams'
import type { Logger } from 'pino'
import { CopyBinaryRowReader } from '../pg/copy-binary.js'
import type { TableInfo } from '../pg/introspect.js'
import { OUTPUT_SETTINGS } from '../pg/output-settings.js'
import { sqlLiteral } from '../pg/sql.js'
import type { SnapshotInfo } from '../storage/shape-log-store.js'
import { qualifiedName } from '../pg/sql.js'
import { snapshotRowSql } from './snapshot-query.js'
import { parseSnapshotText } from './xid-visibility.js'

/**
 * One shape's side of a snapshot. A sink that throws leaves the snapshot (its shape was
 * dropped, or the server is stopping): the others in the same transaction go on.
 */
export interface SnapshotSink {
  /**
   * xids of transactions already replicated that this snapshot (or, while waiting, a fresh
   * one) still counts as running.
   */
  missedCommits(info: SnapshotInfo): readonly number[]
  /** The snapshot missed these: it is dropped, and taken again once they are visible. */
  onRetake(missed: readonly number[]): void
  /** Reads what else the shape needs in the snapshot's transaction (its subqueries' rows), before `onSnapshotInfo`. */
  inSnapshot?(client: pg.PoolClient): Promise<void>
  /** Called once, before any row, with the snapshot's visibility. */
  onSnapshotInfo(info: SnapshotInfo): void
  /** Called with each batch of rows in order; the next batch waits for the promise. */
  onRows(rows: readonly Buffer[]): Promise<void>
}

export interface SnapshotMember {
  /** The shape's table, narrowed to its selected columns. */
  readonly table: TableInfo
  /** The shape's rebuilt where SQL, if any. */
  readonly whereSql: string | undefined
  /** False for a shape that only follows changes: it takes part for the snapshot's visibility. */
  readonly rows: boolean
  /** Per-row headers computed by PostgreSQL (`snapshotRowSql`): a shape with subqueries' tags. */
  readonly headersSql?: Readonly<Record<string, string>>
  readonly sink: SnapshotSink
}

/** Per member: its row count, or why it left the snapshot. */
export type SnapshotOutcome = { readonly rows: number; readonly info: SnapshotInfo } | { readonly left: unknown }

/**
 * The table's name no longer leads to the table (and columns) the shape was bound to: the shape
 * is dropped and its clients refetch against the table as it is now (a 409, never a 400).
 */
export class TableChangedError extends Error {}

const BATCH_BYTES = 1024 * 1024
const PROGRESS_EVERY_MS = 5_000
/** Missed transactions have committed: they turn visible as soon as their backends finish. */
const MISSED_FIRST_POLL_MS = 2
const MISSED_MAX_POLL_MS = 100
const COMMA = 0x2c

/**
 * Takes one snapshot for `members`, shapes of one table. Throws only for what fails the whole
 * transaction (the table changed, PostgreSQL refused the query, the connection broke); a member
 * whose sink throws gets `{ left }` in its outcome.
 */
export async function takeSnapshot(pool: pg.Pool, members: readonly SnapshotMember[], log: Logger): Promise<SnapshotOutcome[]> {
  const outcomes: (SnapshotOutcome | undefined)[] = members.map(() => undefined)
  const counts = members.map(() => 0)
  const inside = (i: number) => outcomes[i] === undefined
  const guard = <T>(i: number, step: () => T): T | undefined => {
    try {
      return step()
    } catch (error) {
      outcomes[i] = { left: error }
      return undefined
    }
  }
  const client = await pool.connect()
  let broken = false
  try {
    let info: SnapshotInfo
    for (;;) {
      info = await beginSnapshot(client, ...members.map((m) => m.table))
      const missed = missedBy(members, info, inside, guard)
      if (missed.length === 0) break
      await client.query('ROLLBACK')
      members.forEach((m, i) => {
        if (inside(i)) guard(i, () => m.sink.onRetake(missed))
      })
      for (let pollMs = MISSED_FIRST_POLL_MS; ; pollMs = Math.min(pollMs * 2, MISSED_MAX_POLL_MS)) {
        await sleep(pollMs)
        if (missedBy(members, await readSnapshot(client), inside, guard).length === 0) break
      }
    }
    // A query that fails here aborts the transaction: it fails the snapshot (such a shape runs alone).
    for (const [i, m] of members.entries()) if (inside(i)) await m.sink.inSnapshot?.(client)
    members.forEach((m, i) => {
      if (inside(i)) guard(i, () => m.sink.onSnapshotInfo(info))
    })

    const branches = members.flatMap((m, i) => (m.rows && inside(i) ? [`(${snapshotRowSql(m.table, m.whereSql, {}, `${i},`, m.headersSql)})`] : []))
    if (branches.length > 0) {
      const started = Date.now()
      let lastProgress = started
      const reader = new CopyBinaryRowReader()
      const stream = client.query(copyTo(`COPY (${branches.join(' UNION ALL ')}) TO STDOUT (FORMAT binary)`))
      const pending = new Map<number, Buffer[]>()
      let pendingBytes = 0
      // All members' rows at once: storage writes them in one transaction, not one after another.
      const flush = async () => {
        const writes = [...pending].filter(([i]) => inside(i)).map(async ([i, rows]) => {
          counts[i]! += rows.length
          try {
            await members[i]!.sink.onRows(rows)
          } catch (error) {
            outcomes[i] = { left: error }
          }
        })
        pending.clear()
        pendingBytes = 0
        await Promise.all(writes)
      }
      for await (const chunk of stream as AsyncIterable<Buffer>) {
        for (const row of reader.push(chunk)) {
          const comma = row.indexOf(COMMA)
          const i = Number(row.toString('latin1', 0, comma))
          let rows = pending.get(i)
          if (!rows) pending.set(i, (rows = []))
          rows.push(row.subarray(comma + 1))
          pendingBytes += row.length
        }
        if (pendingBytes >= BATCH_BYTES) {
          await flush()
          // Every shape was dropped (or the server is stopping): stop reading the table now.
          if (!members.some((_, i) => inside(i))) throw new EveryShapeLeft()
          if (Date.now() - lastProgress >= PROGRESS_EVERY_MS) {
            lastProgress = Date.now()
            log.info({ table: members[0]!.table.table, shapes: members.length, rows: counts.reduce((a, b) => a + b, 0), elapsedMs: lastProgress - started }, 'snapshot in progress')
          }
        }
      }
      await flush()
    }
    await client.query('COMMIT')
    return outcomes.map((outcome, i) => outcome ?? { rows: counts[i]!, info })
  } catch (error) {
    broken = true
    if (error instanceof EveryShapeLeft) return outcomes.map((outcome) => outcome!)
    throw error
  } finally {
    // A connection that failed (or was left) mid-COPY is in an unknown state: discard it.
    client.release(broken)
  }
}

class EveryShapeLeft extends Error {}

/** The replicated transactions the snapshot misses, over the members still in it. */
function missedBy(
  members: readonly SnapshotMember[],
  info: SnapshotInfo,
  inside: (i: number) => boolean,
  guard: <T>(i: number, step: () => T) => T | undefined,
): number[] {
  const missed = new Set<number>()
  members.forEach((m, i) => {
    if (inside(i)) for (const xid of guard(i, () => m.sink.missedCommits(info)) ?? []) missed.add(xid)
  })
  return [...missed]
}

/**
 * Opens the REPEATABLE READ READ ONLY transaction a snapshot (or a subset) reads in, in one round
 * trip (snapshots are taken thousands of times a second, and each round trip waits for a busy
 * server): the table locked first, then in one statement the pinned output settings, the table's
 * check, the snapshot and the WAL position after it. LOCK takes no snapshot, and PostgreSQL takes
 * the transaction's at the statement after it, once the lock is held. A READ ONLY transaction may
 * take ACCESS SHARE, which waits out DDL on the table.
 */
export async function beginSnapshot(client: pg.PoolClient, ...tables: readonly TableInfo[]): Promise<SnapshotInfo & { readonly lsn: string }> {
  const name = qualifiedName(tables[0]!.table)
  const settings = Object.entries(OUTPUT_SETTINGS).map(([setting, value]) => `set_config(${sqlLiteral(setting)}, ${sqlLiteral(value)}, true)`)
  // Several statements in one simple-protocol message: pg answers with one result each.
  const results = (await client.query(
    `BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;
     LOCK TABLE ${name} IN ACCESS SHARE MODE;
     SELECT ${settings.join(', ')},
            c.oid::int8::text AS oid,
            (SELECT json_agg(json_build_object('name', a.attname, 'type', a.atttypid::int8::text))
               FROM pg_catalog.pg_attribute a
              WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped) AS columns,
            pg_current_snapshot()::text AS s,
            (pg_current_wal_insert_lsn() - '0/0')::text AS lsn
       FROM pg_catalog.pg_class c
      WHERE c.oid = ${sqlLiteral(name)}::regclass`,
  )) as unknown as pg.QueryResult<BoundTableRow & { s: string; lsn: string }>[]
  const row = results[2]!.rows[0]!
  checkBoundTable(tables, row)
  return { ...parseSnapshotText(row.s), lsn: row.lsn }
}

/** The locked table as the catalog has it: its OID and its columns' names and type OIDs. */
interface BoundTableRow {
  readonly oid: string
  readonly columns: readonly { readonly name: string; readonly type: string }[] | null
}

/**
 * Checks that the table's name still leads to the shapes' table OID with each shape's columns
 * and their types (`tables`: one table, as each shape narrows it).
 */
function checkBoundTable(tables: readonly TableInfo[], row: BoundTableRow): void {
  const table = tables[0]!
  const where = `${table.table.schema}.${table.table.name}`
  if (Number(row.oid) !== table.oid) {
    throw new TableChangedError(`${where} was dropped and created again (OID ${table.oid} is now ${row.oid}) before its snapshot`)
  }
  const types = new Map((row.columns ?? []).map((column) => [column.name, Number(column.type)]))
  for (const column of new Set(tables.flatMap((t) => t.columns))) {
    const type = types.get(column.name)
    if (type === undefined) throw new TableChangedError(`column ${column.name} of ${where} was dropped or renamed before its snapshot`)
    if (type !== column.typeOid) throw new TableChangedError(`column ${column.name} of ${where} changed type before its snapshot`)
  }
}

/** The current snapshot (the transaction's, inside one) and the WAL insert position after it. */
async function readSnapshot(client: pg.PoolClient): Promise<SnapshotInfo & { readonly lsn: string }> {
  const { rows } = await client.query<{ s: string; lsn: string }>(
    `SELECT pg_current_snapshot()::text AS s, (pg_current_wal_insert_lsn() - '0/0')::text AS lsn`,
  )
  return { ...parseSnapshotText(rows[0]!.s), lsn: rows[0]!.lsn }
}
