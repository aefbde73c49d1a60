/**
 * Takes a shape's snapshot (docs/ARCHITECTURE.md I1–I3): a REPEATABLE READ READ ONLY transaction
 * that first reads `pg_current_snapshot()` and the WAL position after it — handed to the caller
 * at once, so replicated transactions can be filtered while rows are still streaming — then
 * streams every row as wire JSON through binary COPY, in batches, with backpressure from storage.
 * A snapshot that misses transactions already replicated is dropped and taken again once they
 * are visible (`unconfirmed-commits.ts`).
 *
 * The table is locked (ACCESS SHARE) before the transaction's snapshot is taken, and must still
 * be the one the shape was bound to: otherwise a concurrent DROP and CREATE (or a rewrite) would
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

export interface SnapshotSink {
  /**
   * xids of transactions already replicated that this snapshot (or, while waiting, a fresh
   * one) still counts as running. May throw to give up (the shape was dropped).
   */
  missedCommits(info: SnapshotInfo): readonly number[]
  /** The snapshot missed these: it is dropped, and taken again once they are visible. */
  onRetake(missed: readonly number[]): void
  /** Called once, before any row, with the snapshot's visibility. */
  onSnapshotInfo(info: SnapshotInfo): void
  /** Called with each batch of rows in order; the next batch waits for the promise. */
  onRows(rows: readonly Buffer[]): Promise<void>
}

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

export async function takeSnapshot(
  pool: pg.Pool,
  table: TableInfo,
  /** The shape's rebuilt where SQL, if any. */
  whereSql: string | undefined,
  sink: SnapshotSink,
  log: Logger,
  options: { readonly rows: boolean },
): Promise<{ info: SnapshotInfo; rows: number }> {
  const client = await pool.connect()
  let broken = false
  try {
    let info: SnapshotInfo
    for (;;) {
      info = await beginSnapshot(client, table)
      const missed = sink.missedCommits(info)
      if (missed.length === 0) break
      await client.query('ROLLBACK')
      sink.onRetake(missed)
      for (let pollMs = MISSED_FIRST_POLL_MS; ; pollMs = Math.min(pollMs * 2, MISSED_MAX_POLL_MS)) {
        await sleep(pollMs)
        if (sink.missedCommits(await readSnapshot(client)).length === 0) break
      }
    }
    sink.onSnapshotInfo(info)

    if (!options.rows) {
      await client.query('COMMIT')
      return { info, rows: 0 }
    }
    const started = Date.now()
    let lastProgress = started
    let rows = 0
    const reader = new CopyBinaryRowReader()
    const stream = client.query(copyTo(`COPY (${snapshotRowSql(table, whereSql)}) TO STDOUT (FORMAT binary)`))
    let batch: Buffer[] = []
    let batchBytes = 0
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      for (const row of reader.push(chunk)) {
        batch.push(row)
        batchBytes += row.length
      }
      if (batchBytes >= BATCH_BYTES) {
        rows += batch.length
        await sink.onRows(batch)
        batch = []
        batchBytes = 0
        if (Date.now() - lastProgress >= PROGRESS_EVERY_MS) {
          lastProgress = Date.now()
          log.info({ table: table.table, rows, elapsedMs: lastProgress - started }, 'snapshot in progress')
        }
      }
    }
    if (batch.length > 0) {
      rows += batch.length
      await sink.onRows(batch)
    }
    await client.query('COMMIT')
    return { info, rows }
  } catch (error) {
    broken = true
    throw error
  } finally {
    // A connection that failed mid-COPY is in an unknown state: discard it.
    client.release(broken)
  }
}

/**
 * Opens the REPEATABLE READ READ ONLY transaction a snapshot (or a subset) reads in: the table
 * locked and checked first, before any query fixes the transaction's view, then the pinned output
 * settings, then the snapshot and the WAL position after it.
 */
export async function beginSnapshot(client: pg.PoolClient, table: TableInfo): Promise<SnapshotInfo & { readonly lsn: string }> {
  await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY')
  await lockBoundTable(client, table)
  for (const [name, value] of Object.entries(OUTPUT_SETTINGS)) {
    await client.query(`SELECT set_config(${sqlLiteral(name)}, ${sqlLiteral(value)}, true)`)
  }
  return readSnapshot(client)
}

/**
 * Waits out DDL on the table (a READ ONLY transaction may take ACCESS SHARE), then checks that
 * its name still leads to the shape's table OID with the shape's columns and their types.
 */
async function lockBoundTable(client: pg.PoolClient, table: TableInfo): Promise<void> {
  const name = qualifiedName(table.table)
  await client.query(`LOCK TABLE ${name} IN ACCESS SHARE MODE`)
  const { rows } = await client.query<{ oid: string; name: string | null; type: string | null }>(
    `SELECT c.oid::int8::text AS oid, a.attname AS name, a.atttypid::int8::text AS type
       FROM pg_catalog.pg_class c
       LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
      WHERE c.oid = ${sqlLiteral(name)}::regclass`,
  )
  const where = `${table.table.schema}.${table.table.name}`
  if (Number(rows[0]!.oid) !== table.oid) {
    throw new TableChangedError(`${where} was dropped and created again (OID ${table.oid} is now ${rows[0]!.oid}) before its snapshot`)
  }
  const types = new Map(rows.map((row) => [row.name, Number(row.type)]))
  for (const column of table.columns) {
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
