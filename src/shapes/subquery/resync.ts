/**
 * What a shape with subqueries' log needs after a restart to be PostgreSQL's answer again
 * (docs/ARCHITECTURE.md I25). Its subqueries' results were kept in memory only, so they are read
 * again at a new snapshot, with the shape's rows; the rows a client holds at the log's end
 * (`logged-rows.ts`) are compared with those, and the differences become one transaction of
 * the log: inserts, updates (changed columns, tags the row no longer has, its active
 * conditions) and deletes. Later transactions follow by the snapshot's xid rule.
 */
import { OPERATIONS } from '../../protocol/constants.js'
import type { ChangeMessage, Row } from '../change-encoder.js'
import { REPLICA_MODES, type ReplicaMode } from '../shape-definition.js'
import type { LoggedRow } from './logged-rows.js'

export interface ResyncContext {
  /** The `lsn` header of the messages: the log position they are appended at. */
  readonly lsn: string
  readonly xid: number
  readonly relation: readonly [string, string]
  readonly primaryKey: readonly string[]
  readonly replica: ReplicaMode
}

/** `now`: the shape's rows at the new snapshot, as its snapshot sends them (with tags). */
export function resyncMessages(logged: ReadonlyMap<string, LoggedRow>, now: readonly ChangeMessage[], ctx: ResyncContext): ChangeMessage[] {
  const messages: ChangeMessage[] = []
  const seen = new Set<string>()
  const headersOf = (operation: ChangeMessage['headers']['operation']) => ({
    operation,
    relation: ctx.relation,
    lsn: ctx.lsn,
    op_position: messages.length,
    txids: [ctx.xid] as const,
  })
  const full = ctx.replica === REPLICA_MODES.full
  for (const row of now) {
    seen.add(row.key)
    const tags = row.headers.tags ?? []
    const active = row.headers.active_conditions ?? []
    const held = logged.get(row.key)
    if (!held) {
      messages.push({ key: row.key, value: row.value, headers: { ...headersOf(OPERATIONS.insert), tags, active_conditions: active } })
      continue
    }
    const changed = Object.keys(row.value).filter((name) => row.value[name] !== held.value[name])
    const removed = [...held.tags].filter((tag) => !tags.includes(tag))
    const added = tags.some((tag) => !held.tags.has(tag))
    const moved = active.length !== held.active.length || active.some((on, i) => on !== held.active[i])
    if (changed.length === 0 && removed.length === 0 && !added && !moved) continue
    const value = full ? row.value : { ...pick(row.value, ctx.primaryKey), ...pick(row.value, changed) }
    const headers = { ...headersOf(OPERATIONS.update), tags, ...(removed.length > 0 ? { removed_tags: removed } : {}), active_conditions: active }
    messages.push(full ? { key: row.key, value, old_value: pick(held.value, changed), headers } : { key: row.key, value, headers })
  }
  for (const [key, held] of logged) {
    if (seen.has(key)) continue
    const value = full ? held.value : pick(held.value, ctx.primaryKey)
    messages.push({ key, value, headers: headersOf(OPERATIONS.delete) })
  }
  if (messages.length > 0) messages[messages.length - 1]!.headers.last = true
  return messages
}

function pick(row: Row, names: readonly string[]): Row {
  const picked: Row = {}
  for (const name of names) if (name in row) picked[name] = row[name] ?? null
  return picked
}

