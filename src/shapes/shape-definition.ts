/**
 * What a client asks for. Two requests with equal definitions share one shape (one handle,
 * one log). `where` is kept in canonical form (parameters inlined), so clauses written
 * differently but meaning the same tree share a shape; it is also what a stored shape is
 * compiled from again after a restart.
 */
import type { TableName } from '../pg/table-name.js'

export const REPLICA_MODES = { default: 'default', full: 'full' } as const
export type ReplicaMode = (typeof REPLICA_MODES)[keyof typeof REPLICA_MODES]

export const LOG_MODES = { full: 'full', changesOnly: 'changes_only' } as const
export type LogMode = (typeof LOG_MODES)[keyof typeof LOG_MODES]

export interface ShapeDefinition {
  readonly table: TableName
  readonly replica: ReplicaMode
  readonly log: LogMode
  /** Canonical `where` text (see `where/canonical.ts`); absent for the whole table. */
  readonly where?: string
  /** Selected column names, sorted; absent for all columns. */
  readonly columns?: readonly string[]
}

/** Keys by definition: a request's is asked for its key several times (admission, look-up, creation). */
const keys = new WeakMap<ShapeDefinition, string>()

/** A stable string for equality and hashing of definitions. */
export function definitionKey(definition: ShapeDefinition): string {
  let key = keys.get(definition)
  if (key === undefined) keys.set(definition, (key = keyOf(definition)))
  return key
}

function keyOf(definition: ShapeDefinition): string {
  return JSON.stringify([
    definition.table.schema,
    definition.table.name,
    definition.replica,
    definition.log,
    definition.where ?? null,
    definition.columns ?? null,
  ])
}
