/**
 * Takes a shape's snapshot (docs/ARCHITECTURE.md I1–I3): a REPEATABLE READ READ ONLY transaction
 * that first reads `pg_current_snapshot()` and the WAL position after it — handed to the caller
 * at once, so replicated transactions can be filtered while rows are still streaming — then
 * streams every row as wire JSON through binary COPY, in batches, with backpressure from storage.
 * A snapshot that misses transactions already replicated is dropped and taken again once they
 * are visible (`unconfirmed-commits.ts`).
 */
import type pg from 'pg'
import { to as copyTo } from 'pg-copy-streams'
import type { Logger } from 'pino'
import { CopyBinaryRowReader } from '../pg/copy-binary.js'
import type { TableInfo } from '../pg/introspect.js'
import { OUTPUT_SETTINGS } from '../pg/output-settings.js'
import { sqlLiteral } from '../pg/sql.js'
import type { SnapshotInfo } from '../storage/shape-log-store.js'
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
      await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY')
      for (const [name, value] of Object.entries(OUTPUT_SETTINGS)) {
        await client.query(`SELECT set_config(${sqlLiteral(name)}, ${sqlLiteral(value)}, true)`)
      }
      info = await readSnapshot(client)
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

/** The current snapshot (the transaction's, inside one) and the WAL insert position after it. */
async function readSnapshot(client: pg.PoolClient): Promise<SnapshotInfo> {
  const { rows } = await client.query<{ s: string; lsn: string }>(
    `SELECT pg_current_snapshot()::text AS s, (pg_current_wal_insert_lsn() - '0/0')::text AS lsn`,
  )
  return { ...parseSnapshotText(rows[0]!.s), lsn: rows[0]!.lsn }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}
