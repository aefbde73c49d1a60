/**
 * Turns one replicated row change into the wire messages of one shape (docs/PROTOCOL.md: Messages).
 * Pure: no I/O, no clock. Each message is serialized once, here, and stored as bytes.
 *
 * With a `where`, the old and new rows are both evaluated: an update that enters the shape is
 * sent as an insert of the whole (selected) row, one that leaves it as a delete, and a
 * primary-key change as a delete of the old key and an insert of the new — each side only when
 * it is in the shape. Values carry only the selected columns.
 */
import { CONTROL, OPERATIONS, type Operation } from '../protocol/constants.js'
import { UNCHANGED_TOAST, type Tuple, type TupleValue } from '../replication/pgoutput-messages.js'
import type { Relation } from '../replication/transaction.js'
import { REPLICA_MODES, type ReplicaMode } from './shape-definition.js'
import { rowKey } from './row-key.js'
import type { RowTags } from './subquery/tags.js'
import type { SnapshotInfo } from '../storage/stored-shape.js'

export type Row = Record<string, string | null>

export interface ChangeMessage {
  readonly key: string
  readonly value: Row
  readonly old_value?: Row
  readonly headers: {
    readonly operation: Operation
    readonly relation: readonly [string, string]
    readonly lsn: string
    readonly op_position: number
    readonly txids: readonly [number]
    /** Shapes with subqueries (docs/PROTOCOL.md: Subqueries). */
    readonly tags?: readonly string[]
    readonly removed_tags?: readonly string[]
    readonly active_conditions?: readonly boolean[]
    last?: true
  }
}

export interface EncodeContext {
  readonly keyPrefix: string
  readonly relationName: readonly [string, string]
  readonly primaryKey: readonly string[]
  readonly replica: ReplicaMode
  readonly lsn: string
  readonly xid: number
  /** Whether a row is in the shape; absent: every row is. */
  readonly matches?: ((row: Row) => boolean) | undefined
  /**
   * Whether an old row was in the shape, when that differs from `matches`: a subquery's result
   * may change in the same transaction, and the old row was in with the result before it.
   */
  readonly matchesOld?: ((row: Row) => boolean) | undefined
  /** A row's tags and active conditions, for a shape with subqueries. */
  readonly tagsOf?: ((row: Row) => RowTags) | undefined
  /** Selected column names; absent: all columns. */
  readonly columns?: ReadonlySet<string> | undefined
}

/** What an `EncodeContext` holds for every transaction of one shape. */
export type ShapeEncoding = Omit<EncodeContext, 'lsn' | 'xid'>

/**
 * One transaction's context for one shape. Every field is always set, so all contexts share
 * one object layout and the encoder's property reads stay fast (this runs per shape per transaction).
 */
export function encodeContext(shape: ShapeEncoding, lsn: string, xid: number): EncodeContext {
  return {
    keyPrefix: shape.keyPrefix,
    relationName: shape.relationName,
    primaryKey: shape.primaryKey,
    replica: shape.replica,
    lsn,
    xid,
    matches: shape.matches,
    matchesOld: shape.matchesOld,
    tagsOf: shape.tagsOf,
    columns: shape.columns,
  }
}

type RowChange =
  | { readonly kind: 'insert'; readonly relation: Relation; readonly record: Tuple }
  | { readonly kind: 'update'; readonly relation: Relation; readonly old: Tuple | undefined; readonly record: Tuple }
  | { readonly kind: 'delete'; readonly relation: Relation; readonly old: Tuple }

export function encodeChange(ctx: EncodeContext, change: RowChange, position: number): ChangeMessage[] {
  // Module-level helpers rather than closures: this runs once per change and shape.
  const names = columnNames(change.relation)
  switch (change.kind) {
    case 'insert': {
      const row = toRow(names, change.record, undefined)
      return inShape(ctx, row) ? [insertOf(ctx, names, row, position)] : []
    }
    case 'delete': {
      const old = toRow(names, change.old, undefined)
      return wasInShape(ctx, old) ? [deleteOf(ctx, names, old, position)] : []
    }
    case 'update': {
      const row = toRow(names, change.record, change.old)
      const old = change.old ? toRow(names, change.old, undefined) : undefined
      const isIn = inShape(ctx, row)
      // Without the old row (no REPLICA IDENTITY FULL) assume it was where the new one is.
      const wasIn = old ? wasInShape(ctx, old) : isIn
      if (!wasIn) return isIn ? [insertOf(ctx, names, row, position)] : []
      if (!isIn) return [deleteOf(ctx, names, old ?? row, position)]
      const newKey = keyOf(ctx, row)
      if (old && keyOf(ctx, old) !== newKey) {
        // A primary-key change is a different row to the client: delete, then insert.
        return [deleteOf(ctx, names, old, position), insertOf(ctx, names, row, position)]
      }
      const changed = (old ? names.filter((n) => n in row && row[n] !== old[n]) : Object.keys(row)).filter(
        (n) => !ctx.columns || ctx.columns.has(n),
      )
      const tags = updateTags(ctx, row, old)
      if (changed.length === 0 && !tags?.removed_tags) return []
      if (ctx.replica === REPLICA_MODES.full) {
        return [messageOf(ctx, OPERATIONS.update, newKey, project(ctx, names, row), old ? pick(old, changed) : undefined, position, tags)]
      }
      return [messageOf(ctx, OPERATIONS.update, newKey, { ...pick(row, ctx.primaryKey), ...pick(row, changed) }, undefined, position, tags)]
    }
  }
}

interface TagHeaders extends RowTags {
  readonly removed_tags?: readonly string[]
}

function messageOf(
  ctx: EncodeContext,
  operation: Operation,
  key: string,
  value: Row,
  oldValue: Row | undefined,
  position: number,
  tags?: TagHeaders,
): ChangeMessage {
  const headers = { operation, relation: ctx.relationName, lsn: ctx.lsn, op_position: position, txids: [ctx.xid] as const, ...tags }
  return oldValue ? { key, value, old_value: oldValue, headers } : { key, value, headers }
}

function insertOf(ctx: EncodeContext, names: readonly string[], row: Row, position: number): ChangeMessage {
  return messageOf(ctx, OPERATIONS.insert, keyOf(ctx, row), project(ctx, names, row), undefined, position, ctx.tagsOf?.(row))
}

/** An update's tags: the new row's, and the old row's it no longer has (a client drops those). */
function updateTags(ctx: EncodeContext, row: Row, old: Row | undefined): TagHeaders | undefined {
  if (!ctx.tagsOf) return undefined
  const now = ctx.tagsOf(row)
  const removed = old ? ctx.tagsOf(old).tags.filter((tag) => !now.tags.includes(tag)) : []
  return removed.length > 0 ? { ...now, removed_tags: removed } : now
}

function deleteOf(ctx: EncodeContext, names: readonly string[], old: Row, position: number): ChangeMessage {
  const value = ctx.replica === REPLICA_MODES.full ? project(ctx, names, old) : pick(old, ctx.primaryKey)
  return messageOf(ctx, OPERATIONS.delete, keyOf(ctx, old), value, undefined, position)
}

function inShape(ctx: EncodeContext, row: Row): boolean {
  return ctx.matches === undefined || ctx.matches(row)
}

function wasInShape(ctx: EncodeContext, row: Row): boolean {
  return ctx.matchesOld ? ctx.matchesOld(row) : inShape(ctx, row)
}

function project(ctx: EncodeContext, names: readonly string[], row: Row): Row {
  return ctx.columns ? pick(row, names.filter((n) => ctx.columns!.has(n))) : row
}

const namesOf = new WeakMap<Relation, readonly string[]>()

/** A relation's column names, kept per Relation message (one per table until its schema changes). */
function columnNames(relation: Relation): readonly string[] {
  let names = namesOf.get(relation)
  if (!names) namesOf.set(relation, (names = relation.columns.map((c) => c.name)))
  return names
}

/** Unchanged TOASTed values are taken from the old row; without one they are left out. */
export function toRow(names: readonly string[], tuple: Tuple, old: Tuple | undefined): Row {
  const row: Row = {}
  for (let i = 0; i < names.length; i++) {
    let value: TupleValue | undefined = tuple[i]
    if (value === UNCHANGED_TOAST) value = old?.[i]
    if (value === UNCHANGED_TOAST || value === undefined) continue
    row[names[i]!] = value
  }
  return row
}

function pick(row: Row, columns: readonly string[]): Row {
  const picked: Row = {}
  for (const c of columns) if (c in row) picked[c] = row[c]!
  return picked
}

function keyOf(ctx: EncodeContext, row: Row): string {
  return rowKey(ctx.keyPrefix, ctx.primaryKey.map((c) => row[c] ?? null))
}

/** The control message that ends a snapshot, with its visibility (PROTOCOL.md: Messages). */
export function snapshotEndMessage(info: SnapshotInfo): Buffer {
  return Buffer.from(JSON.stringify({ headers: { control: CONTROL.snapshotEnd, xmin: info.xmin, xmax: info.xmax, xip_list: info.xip } }))
}
