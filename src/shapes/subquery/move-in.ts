/**
 * Reads the outer rows that values entering a subquery's result may bring in: the rows whose
 * values equal one of them (an indexed lookup when the outer column has an index), every column
 * as text, in a REPEATABLE READ snapshot with the pinned output settings (docs/ARCHITECTURE.md
 * I14): one that does not show every routed transaction is taken again once it does (as I2).
 * Which of them enter, and what snapshot they were read at, the caller decides
 * (`shape-subqueries.ts`). The replication stream goes on meanwhile; only the shape waits
 * (`subquery-commits.ts`), so the read is one round trip: the transaction's start, its snapshot,
 * the rows and the commit; a snapshot that misses a routed transaction is read again. (The table is
 * not locked as a shape's snapshot locks it: a table dropped or altered under a shape ends it
 * through the stream's Relation message or its TRUNCATE.)
 */
import { setTimeout as sleep } from 'node:timers/promises'
import type pg from 'pg'
import type { TableInfo } from '../../pg/introspect.js'
import { OUTPUT_SETTINGS } from '../../pg/output-settings.js'
import { qualifiedName, sqlLiteral } from '../../pg/sql.js'
import { textOutputSql } from '../../pg/text-output-sql.js'
import { OPERATIONS } from '../../protocol/constants.js'
import type { ChangeMessage, EncodeContext } from '../change-encoder.js'
import { rowKey } from '../row-key.js'
import type { Row } from '../where/evaluate.js'
import { renderSql } from '../where/render-sql.js'
import type { TupleParts } from '../where/value-set.js'
import { parseValue } from '../where/values.js'
import { parseSnapshotText, visibilityOf, type Visibility } from '../xid-visibility.js'
import type { Dependency } from './dependency.js'
import type { RowTags } from './tags.js'

export interface MoveIn {
  readonly dependency: Dependency
  readonly tuples: readonly TupleParts[]
}

/**
 * Moves whose values are known only from rows of the tables between: a nested subquery's result
 * changed, and the rows of the subqueries around it are read first, at the same snapshot
 * (docs/ARCHITECTURE.md I25). `read` runs one such query.
 */
export type NestedMoves = (read: (table: TableInfo, moves: readonly MoveIn[]) => Promise<Row[]>) => Promise<readonly MoveIn[]>

export interface MoveInRead {
  readonly rows: readonly Row[]
  readonly visibility: Visibility
  /** The WAL insert position read after the snapshot: every commit it shows lies before it. */
  readonly lsn: bigint
  toMessage(row: Row, context: EncodeContext, tags: RowTags): ChangeMessage
}

const BEGIN = [
  'BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY',
  `SELECT ${Object.entries(OUTPUT_SETTINGS).map(([name, value]) => `set_config(${sqlLiteral(name)}, ${sqlLiteral(value)}, true)`).join(', ')}`,
  `SELECT pg_current_snapshot()::text AS s, (pg_current_wal_insert_lsn() - '0/0')::text AS lsn`,
].join('; ')
const FIRST_POLL_MS = 2
const MAX_POLL_MS = 100

/** One shape's move-in to read: its moves, and the routed transactions a snapshot does not show yet. */
export interface MoveInRequest {
  readonly moves: readonly MoveIn[] | NestedMoves
  readonly missed: (visibility: Visibility) => readonly number[]
}

/**
 * Reads the move-ins of `requests` (several only when each has plain moves) in one transaction
 * of `client`, all at one snapshot, which must show every routed transaction any of them waits
 * for: one query whose rows say which move-ins they belong to (docs/ARCHITECTURE.md I32).
 */
export async function readMoveIns(client: pg.PoolClient, table: TableInfo, requests: readonly MoveInRequest[]): Promise<MoveInRead[]> {
  const read = async (sql: string, of: TableInfo) => rowsOf(of, (await client.query<unknown[]>({ text: sql, rowMode: 'array' })).rows)
  const nested = requests.length === 1 && typeof requests[0]!.moves === 'function' ? requests[0]!.moves : undefined
  const flat = nested ? [] : requests.map((request) => request.moves as readonly MoveIn[])
  for (let pollMs = FIRST_POLL_MS; ; pollMs = Math.min(pollMs * 2, MAX_POLL_MS)) {
    // One round trip unless nested moves need rows first; a snapshot that turns out to miss a routed transaction is read again.
    const results = (await client.query({ text: nested ? BEGIN : `${BEGIN}; ${rowsSql(table, flat)}; COMMIT`, rowMode: 'array' })) as unknown as pg.QueryResult<unknown[]>[]
    const [snapshotText, lsnText] = results[2]!.rows[0] as [string, string]
    const visibility = visibilityOf(parseSnapshotText(snapshotText))
    if (requests.some((request) => request.missed(visibility).length > 0)) {
      if (nested) await client.query('COMMIT')
      await sleep(pollMs)
      continue
    }
    const lsn = BigInt(lsnText)
    if (nested) {
      const outer = await nested((inner, innerMoves) => read(rowsSql(inner, [innerMoves]), inner))
      const rows = await read(rowsSql(table, [outer]), table)
      await client.query('COMMIT')
      return [{ rows, visibility, lsn, toMessage: moveInMessage }]
    }
    const found = rowsOf(table, results[3]!.rows)
    // One request's rows name no request: they are all its own.
    if (flat.length === 1) return [{ rows: found, visibility, lsn, toMessage: moveInMessage }]
    const rows = flat.map((): Row[] => [])
    found.forEach((row, r) => {
      for (const i of (results[3]!.rows[r]![table.columns.length] as string).split(',')) rows[Number(i)]!.push(row)
    })
    return rows.map((own) => ({ rows: own, visibility, lsn, toMessage: moveInMessage }))
  }
}

/**
 * Every column of the rows of `table` whose values equal a tuple moved by one of `requests`, as
 * text, in the table's column order, read as arrays (no JSON object built by PostgreSQL for each
 * row and parsed again here); with several requests, one more
 * column lists the requests a row is for (`0,2`): one column, however many requests, so the rows
 * cost the client no more to parse than their own.
 */
function rowsSql(table: TableInfo, requests: readonly (readonly MoveIn[])[]): string {
  const filters = requests.map((moves) => moves.map(filterOf).filter((sql) => sql !== undefined).join(' OR ') || 'false')
  const which = requests.length === 1 ? '' : `, concat_ws(',', ${filters.map((filter, i) => `CASE WHEN ${filter} THEN '${i}' END`).join(', ')})`
  return `SELECT ${table.columns.map(textOutputSql).join(', ')}${which} FROM ${qualifiedName(table.table)} WHERE ${filters.map((filter) => `(${filter})`).join(' OR ')}`
}

/** Rows read as arrays of `table`'s columns' text (and maybe more columns after them), by column name. */
function rowsOf(table: TableInfo, values: readonly unknown[][]): Row[] {
  const names = table.columns.map((column) => column.name)
  return values.map((fields) => {
    const row: Record<string, string | null> = {}
    for (let i = 0; i < names.length; i++) row[names[i]!] = fields[i] as string | null
    return row
  })
}

/** `args IN (tuples)` with each value a literal of the type it is compared in; NULLs never match. */
function filterOf({ dependency, tuples }: MoveIn): string | undefined {
  const args = dependency.node.args
  const known = tuples.filter((parts) => !parts.includes(null))
  if (known.length === 0) return undefined
  const literal = (parts: TupleParts) => parts.map((part, i) => renderSql({ kind: 'const', value: parseValue(args[i]!.type, part!) ?? null, type: args[i]!.type, at: 0 }))
  if (args.length === 1) return `(${renderSql(args[0]!)} IN (${known.map((parts) => literal(parts)[0]).join(', ')}))`
  return `((${args.map(renderSql).join(', ')}) IN (${known.map((parts) => `(${literal(parts).join(', ')})`).join(', ')}))`
}

/** A row a move-in read, as the insert that brings it to the client. */
export function moveInMessage(row: Row, context: EncodeContext, tags: RowTags): ChangeMessage {
  const key = rowKey(context.keyPrefix, context.primaryKey.map((column) => row[column] ?? null))
  const value: Record<string, string | null> = {}
  for (const [name, text] of Object.entries(row)) if (!context.columns || context.columns.has(name)) value[name] = text ?? null
  const headers = { operation: OPERATIONS.insert, relation: context.relationName, lsn: context.lsn, op_position: 0, txids: [context.xid] as const, ...tags }
  return { key, value, headers }
}
