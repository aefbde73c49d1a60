/**
 * What a client asks for. Two requests with equal definitions share one shape (one handle,
 * one log). Fields beyond `table` are carried now so the filtered-shape work only adds to them.
 */
export interface TableName {
  readonly schema: string
  readonly name: string
}

export const REPLICA_MODES = { default: 'default', full: 'full' } as const
export type ReplicaMode = (typeof REPLICA_MODES)[keyof typeof REPLICA_MODES]

export const LOG_MODES = { full: 'full', changesOnly: 'changes_only' } as const
export type LogMode = (typeof LOG_MODES)[keyof typeof LOG_MODES]

export interface ShapeDefinition {
  readonly table: TableName
  readonly replica: ReplicaMode
  readonly log: LogMode
}

/** A stable string for equality and hashing of definitions. */
export function definitionKey(definition: ShapeDefinition): string {
  return JSON.stringify([
    definition.table.schema,
    definition.table.name,
    definition.replica,
    definition.log,
  ])
}

export function qualifiedName(table: TableName): string {
  return `${quoteIdent(table.schema)}.${quoteIdent(table.name)}`
}

export function quoteIdent(identifier: string): string {
  return `"${identifier.replaceAll('"', '""')}"`
}
