/**
 * Takes shapes' snapshots (docs/ARCHITECTURE.md I1–I3): a REPEATABLE READ READ ONLY transaction
 * that first reads `pg_current_snapshot()` and the WAL position after it — handed to the caller
 * at once, so replicated transactions can be filtered while rows are still streaming — then
 * streams every row as wire JSON through binary COPY, in batches, with backpressure from storage.
 * A snapshot that misses transactions already replicated is dropped and taken again once they
 * are visible (`unconfirmed-commits.ts`).
 *
 * Several shapes of one table can share the transaction (`snapshot-batch.ts`, I21): their rows
 * are counted with the snapshot, then read in packs, smallest shapes first, each pack one query
 * (`snapshot-plan.ts`, I30) whose every row names its branch, so each shape gets exactly its rows,
 * all of them the same snapshot and WAL position, and each is complete once its pack is read.
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
import { qualifiedName, sqlLiteral } from '../pg/sql.js'
import type { SnapshotInfo } from '../storage/shape-log-store.js'
import { countSql, packQuery, packsOf, type CountRow, type PlannedShape } from './snapshot-plan.js'
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
  /**
   * Called once the shape's rows are all read, with the last of them, in place of a last `onRows`:
   * shapes of a pack complete at once, so their last rows and ends can share one storage write.
   */
  onComplete?(rows: readonly Buffer[], info: SnapshotInfo): Promise<void>
}

/** `table`: narrowed to the shape's selected columns; `whereSql`: its rebuilt where; `headersSql`: per-row headers computed by PostgreSQL (a shape with subqueries' tags). */
export interface SnapshotMember extends PlannedShape {
  /** False for a shape that only follows changes: it takes part for the snapshot's visibility. */
  readonly rows: boolean
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
/** How often a long snapshot logs its progress; one that took longer logs its end at info too. */
export const PROGRESS_EVERY_MS = 5_000
/** Missed transactions have committed: they turn visible as soon as their backends finish. */
const MISSED_FIRST_POLL_MS = 2
const MISSED_MAX_POLL_MS = 100

/**
 * Takes one snapshot for `members`, shapes of one table. Throws only for what fails the whole
 * transaction (the table changed, PostgreSQL refused the query, the connection broke); a member
 * whose sink throws gets `{ left }` in its outcome. `onDone` hears of each member whose rows are
 * all read as soon as its pack is, before the others' (I30).
 */
export async function takeSnapshot(
  pool: pg.Pool,
  members: readonly SnapshotMember[],
  log: Logger,
  onDone?: (member: number, outcome: SnapshotOutcome) => void,
): Promise<SnapshotOutcome[]> {
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
  const reading = members.flatMap((m, i) => (m.rows ? [i] : []))
  // Packs need each shape's size, when there is more than one to read.
  const counting = reading.length > 1 ? countSql(members, reading) : undefined
  const client = await pool.connect()
  let broken = false
  try {
    let opened: OpenedSnapshot
    for (;;) {
      opened = await openSnapshot(client, members.map((m) => m.table), counting)
      const missed = missedBy(members, opened.info, inside, guard)
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
    const info = opened.info
    // A query that fails here aborts the transaction: it fails the snapshot (such a shape runs alone).
    for (const [i, m] of members.entries()) if (inside(i)) await m.sink.inSnapshot?.(client)
    members.forEach((m, i) => {
      if (inside(i)) guard(i, () => m.sink.onSnapshotInfo(info))
    })

    const started = Date.now()
    let lastProgress = started
    const pending: (Buffer[] | undefined)[] = members.map(() => undefined)
    let pendingBytes = 0
    // All members' rows at once: storage writes them in one transaction, not one after another.
    const flush = async () => {
      const writes = pending.map(async (rows, i) => {
        if (!rows || !inside(i)) return
        counts[i]! += rows.length
        try {
          await members[i]!.sink.onRows(rows)
        } catch (error) {
          outcomes[i] = { left: error }
        }
      })
      pending.fill(undefined)
      pendingBytes = 0
      await Promise.all(writes)
    }
    const complete = async (i: number) => {
      const rows = pending[i] ?? NO_ROWS
      pending[i] = undefined
      counts[i]! += rows.length
      const sink = members[i]!.sink
      try {
        if (sink.onComplete) await sink.onComplete(rows, info)
        else if (rows.length > 0) await sink.onRows(rows)
      } catch (error) {
        outcomes[i] = { left: error }
      }
    }
    for (const pack of counting === undefined ? [reading] : packsOf(members, reading, opened.counts)) {
      const still = pack.filter(inside)
      if (still.length === 0) continue
      const query = packQuery(members, still)
      const reader = new CopyBinaryRowReader(3)
      const stream = client.query(copyTo(`COPY (${query.sql}) TO STDOUT (FORMAT binary)`))
      for await (const chunk of stream as AsyncIterable<Buffer>) {
        const fields = reader.push(chunk)
        for (let f = 0; f < fields.length; f += 3) {
          const row = fields[f + 2]!
          for (const i of query.shapesOf(fields[f]!.readInt32BE(0), fields[f + 1]!)) {
            const rows = pending[i]
            if (rows) rows.push(row)
            else pending[i] = [row]
          }
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
      await Promise.all(still.filter(inside).map(complete))
      pendingBytes = 0
      for (const i of still) {
        outcomes[i] ??= { rows: counts[i]!, info }
        onDone?.(i, outcomes[i])
      }
    }
    // A shape that only follows changes has no rows, but its snapshot still ends.
    await Promise.all(members.flatMap((m, i) => (!m.rows && inside(i) ? [complete(i)] : [])))
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

const NO_ROWS: readonly Buffer[] = []

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
  return (await openSnapshot(client, tables)).info
}

interface OpenedSnapshot {
  readonly info: SnapshotInfo & { readonly lsn: string }
  /** What `counting` answered in the snapshot (empty without it). */
  readonly counts: readonly CountRow[]
}

/** `beginSnapshot`, with `counting` (a statement of `CountRow`s) run in the same round trip. */
async function openSnapshot(client: pg.PoolClient, tables: readonly TableInfo[], counting?: string): Promise<OpenedSnapshot> {
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
      WHERE c.oid = ${sqlLiteral(name)}::regclass${counting === undefined ? '' : `;\n     ${counting}`}`,
  )) as unknown as pg.QueryResult[]
  const row = results[2]!.rows[0] as BoundTableRow & { s: string; lsn: string }
  checkBoundTable(tables, row)
  return { info: { ...parseSnapshotText(row.s), lsn: row.lsn }, counts: counting === undefined ? [] : (results[3]!.rows as CountRow[]) }
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
