/**
 * Turns one replicated row change into the wire messages of one shape (PROTOCOL: Messages).
 * Pure: no I/O, no clock. Each message is serialized once, here, and stored as bytes.
 */
import { OPERATIONS, type Operation } from '../protocol/constants.js'
import { UNCHANGED_TOAST, type Tuple, type TupleValue } from '../replication/pgoutput-messages.js'
import type { Relation } from '../replication/transaction.js'
import { REPLICA_MODES, type ReplicaMode } from './shape-definition.js'
import { rowKey } from './row-key.js'

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
}

type RowChange =
  | { readonly kind: 'insert'; readonly relation: Relation; readonly record: Tuple }
  | { readonly kind: 'update'; readonly relation: Relation; readonly old: Tuple | undefined; readonly record: Tuple }
  | { readonly kind: 'delete'; readonly relation: Relation; readonly old: Tuple }

export function encodeChange(ctx: EncodeContext, change: RowChange, position: number): ChangeMessage[] {
  const names = change.relation.columns.map((c) => c.name)
  const message = (operation: Operation, key: string, value: Row, oldValue?: Row): ChangeMessage => ({
    key,
    value,
    ...(oldValue ? { old_value: oldValue } : {}),
    headers: {
      operation,
      relation: ctx.relationName,
      lsn: ctx.lsn,
      op_position: position,
      txids: [ctx.xid],
    },
  })

  switch (change.kind) {
    case 'insert': {
      const row = toRow(names, change.record, undefined)
      return [message(OPERATIONS.insert, keyOf(ctx, row), row)]
    }
    case 'delete': {
      const old = toRow(names, change.old, undefined)
      const value = ctx.replica === REPLICA_MODES.full ? old : pick(old, ctx.primaryKey)
      return [message(OPERATIONS.delete, keyOf(ctx, old), value)]
    }
    case 'update': {
      const row = toRow(names, change.record, change.old)
      const old = change.old ? toRow(names, change.old, undefined) : undefined
      const newKey = keyOf(ctx, row)
      if (old && keyOf(ctx, old) !== newKey) {
        // A primary-key change is a different row to the client: delete, then insert.
        const deleted = ctx.replica === REPLICA_MODES.full ? old : pick(old, ctx.primaryKey)
        return [message(OPERATIONS.delete, keyOf(ctx, old), deleted), message(OPERATIONS.insert, newKey, row)]
      }
      const changed = old ? names.filter((n) => n in row && row[n] !== old[n]) : Object.keys(row)
      if (changed.length === 0) return []
      if (ctx.replica === REPLICA_MODES.full) {
        return [message(OPERATIONS.update, newKey, row, old ? pick(old, changed) : undefined)]
      }
      return [message(OPERATIONS.update, newKey, { ...pick(row, ctx.primaryKey), ...pick(row, changed) })]
    }
  }
}

/** Unchanged TOASTed values are taken from the old row; without one they are left out. */
function toRow(names: readonly string[], tuple: Tuple, old: Tuple | undefined): Row {
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
