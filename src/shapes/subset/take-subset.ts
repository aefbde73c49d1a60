/**
 * Runs a subset snapshot in the transaction a shape's snapshot uses (`beginSnapshot`: the table
 * locked and checked, `pg_current_snapshot()` and the WAL insert position), then streams the rows (the shape's
 * `where` AND the subset's, ordered and paged) as wire JSON through binary COPY. Rows are
 * pulled batch by batch, so a response of any size holds about one COPY chunk in memory.
 *
 * `database_lsn` is the WAL *insert* position, read after the snapshot: every transaction the
 * snapshot sees has inserted its commit record before it, so its commit LSN (the `lsn` header
 * of its changes) is below `database_lsn`. The client retires a subset once it has seen an LSN
 * at or past `database_lsn`, so it never retires one while a change it contains is still to
 * come. (`pg_current_wal_lsn()`, the write position, can lag a commit made with
 * `synchronous_commit = off`.)
 */
import { randomInt } from 'node:crypto'
import type pg from 'pg'
import { to as copyTo } from 'pg-copy-streams'
import { CopyBinaryRowReader } from '../../pg/copy-binary.js'
import type { TableInfo } from '../../pg/introspect.js'
import { lsn, type Lsn } from '../../pg/lsn.js'
import type { SnapshotInfo } from '../../storage/shape-log-store.js'
import { snapshotRowSql } from '../snapshot-query.js'
import { beginSnapshot } from '../snapshot.js'
import type { CompiledSubset } from './compile-subset.js'

export interface SubsetMetadata extends SnapshotInfo {
  readonly databaseLsn: Lsn
  /** Random, echoed in every row's `snapshot_mark` header. */
  readonly snapshotMark: number
}

export interface SubsetRows {
  readonly metadata: SubsetMetadata
  /** The rows' wire JSON, a batch per COPY chunk. Ending it early (`return`) frees the connection. */
  readonly batches: AsyncGenerator<readonly Buffer[], void, undefined>
}

/** Marks fit the client's `number` and Electric's range (1..2^31). */
const MAX_MARK = 2 ** 31

/**
 * `headersSql`: a shape with subqueries' `tags` and `active_conditions`, computed for each row at
 * the subset's snapshot as its initial snapshot computes them, so a client's tag index can move
 * the subset's rows out as it does the log's (docs/ARCHITECTURE.md I25).
 */
export async function takeSubset(
  pool: pg.Pool,
  table: TableInfo,
  shapeWhereSql: string | undefined,
  subset: CompiledSubset,
  headersSql?: Readonly<Record<string, string>>,
): Promise<SubsetRows> {
  const client = await pool.connect()
  try {
    const info = await beginSnapshot(client, table)
    const snapshotMark = randomInt(1, MAX_MARK)
    const metadata: SubsetMetadata = { ...info, databaseLsn: lsn(BigInt(info.lsn)), snapshotMark }
    const sql = subsetSql(table, shapeWhereSql, subset, snapshotMark, headersSql)
    const stream = client.query(copyTo(`COPY (${sql}) TO STDOUT (FORMAT binary)`))
    return { metadata, batches: readBatches(client, stream) }
  } catch (error) {
    client.release(true)
    throw error
  }
}

export function subsetSql(
  table: TableInfo,
  shapeWhereSql: string | undefined,
  subset: CompiledSubset,
  snapshotMark: number,
  headersSql?: Readonly<Record<string, string>>,
): string {
  const filters = [shapeWhereSql, subset.whereSql].filter((sql) => sql !== undefined)
  const where = filters.length === 0 ? undefined : filters.map((sql) => `(${sql})`).join(' AND ')
  let sql = snapshotRowSql(table, where, { snapshot_mark: snapshotMark }, headersSql)
  if (subset.orderBySql !== undefined) sql += ` ORDER BY ${subset.orderBySql}`
  if (subset.limit !== undefined) sql += ` LIMIT ${subset.limit}`
  if (subset.offset !== undefined) sql += ` OFFSET ${subset.offset}`
  return sql
}

async function* readBatches(client: pg.PoolClient, stream: AsyncIterable<Buffer> & { destroy(): void }): AsyncGenerator<readonly Buffer[], void, undefined> {
  const reader = new CopyBinaryRowReader()
  let finished = false
  try {
    for await (const chunk of stream) {
      const rows = reader.push(chunk)
      if (rows.length > 0) yield rows
    }
    await client.query('COMMIT')
    finished = true
  } finally {
    if (!finished) stream.destroy()
    // A connection left mid-COPY is in an unknown state: discard it.
    client.release(!finished)
  }
}
