/**
 * The rows a client holds after reading a shape with subqueries' log, kept as Electric's clients
 * keep them (TanStack DB's tag index): inserts and updates carry `tags` and `active_conditions`,
 * an update's `removed_tags` are dropped, a move-out sets its position false for the rows tagged
 * with its value and drops those no disjunct still holds for, a move-in sets it true. A restart
 * compares this with PostgreSQL's answer (`resync.ts`, docs/ARCHITECTURE.md I25).
 */
import { EVENTS, OPERATIONS } from '../../protocol/constants.js'
import type { Row } from '../change-encoder.js'

export interface LoggedRow {
  value: Row
  readonly tags: Set<string>
  active: boolean[]
}

interface LogMessage {
  readonly key?: string
  readonly value?: Row
  readonly headers: {
    readonly operation?: string
    readonly event?: string
    readonly tags?: readonly string[]
    readonly removed_tags?: readonly string[]
    readonly active_conditions?: readonly boolean[]
    readonly patterns?: readonly { readonly pos: number; readonly value: string }[]
  }
}

/** Replays a log's entries (wire JSON, in order) into the rows a client holds at its end. */
export function loggedRows(entries: Iterable<Buffer>): Map<string, LoggedRow> {
  const rows = new Map<string, LoggedRow>()
  for (const entry of entries) apply(rows, JSON.parse(entry.toString('utf8')) as LogMessage)
  return rows
}

function apply(rows: Map<string, LoggedRow>, message: LogMessage): void {
  const { headers } = message
  if (message.key !== undefined) {
    const key = message.key
    if (headers.operation === OPERATIONS.delete) rows.delete(key)
    else if (headers.operation === OPERATIONS.insert || !rows.has(key)) {
      rows.set(key, { value: { ...message.value }, tags: new Set(headers.tags), active: [...(headers.active_conditions ?? [])] })
    } else {
      const row = rows.get(key)!
      row.value = { ...row.value, ...message.value }
      for (const tag of headers.removed_tags ?? []) row.tags.delete(tag)
      for (const tag of headers.tags ?? []) row.tags.add(tag)
      if (headers.active_conditions) row.active = [...headers.active_conditions]
    }
    return
  }
  if (headers.event !== EVENTS.moveOut && headers.event !== EVENTS.moveIn) return
  for (const { pos, value } of headers.patterns ?? []) {
    for (const [key, row] of rows) {
      if (![...row.tags].some((tag) => tag.split('/')[pos] === value)) continue
      row.active[pos] = headers.event === EVENTS.moveIn
      if (headers.event === EVENTS.moveOut && !held(row)) rows.delete(key)
    }
  }
}

/** A row stays while some disjunct (its tag's non-empty positions) has all its positions true. */
function held(row: LoggedRow): boolean {
  return [...row.tags].some((tag) =>
    tag
      .split('/')
      .every((slot, i) => slot === '' || row.active[i] === true),
  )
}
