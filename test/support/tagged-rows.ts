/**
 * A client's rows for a shape with subqueries, kept as TanStack DB's electric collection keeps
 * them (its tag index): inserts and updates carry `tags` and `active_conditions`, a move-out
 * sets a position false for the rows tagged with its value and drops those no disjunct still
 * holds for, a move-in sets it true. `@electric-sql/client`'s own `Shape` ignores event
 * messages, so tests following such a shape with `ShapeStream` materialize through this.
 */
import type { Message, Row } from '@electric-sql/client'

interface Tagged {
  value: Row
  tags: Set<string>
  active: boolean[]
}

export class TaggedRows {
  readonly rows = new Map<string, Tagged>()
  /** The rows at every up-to-date, as `state()` gives them. */
  readonly states: string[] = []

  apply(messages: readonly Message[]): void {
    for (const message of messages) {
      const headers = message.headers as Record<string, unknown>
      if ('key' in message) {
        const key = message.key
        const tags = (headers['tags'] as string[] | undefined) ?? []
        const removed = (headers['removed_tags'] as string[] | undefined) ?? []
        const active = headers['active_conditions'] as boolean[] | undefined
        switch (headers['operation']) {
          case 'insert':
            this.rows.set(key, { value: { ...message.value }, tags: new Set(tags), active: [...(active ?? [])] })
            break
          case 'update': {
            const row = this.rows.get(key)
            if (!row) throw new Error(`update of ${key}, which the client does not hold`)
            row.value = { ...row.value, ...message.value }
            for (const tag of removed) row.tags.delete(tag)
            for (const tag of tags) row.tags.add(tag)
            if (active) row.active = [...active]
            break
          }
          case 'delete':
            this.rows.delete(key)
            break
        }
      } else if (headers['event'] === 'move-out' || headers['event'] === 'move-in') {
        for (const { pos, value } of headers['patterns'] as { pos: number; value: string }[]) {
          for (const [key, row] of this.rows) {
            if (![...row.tags].some((tag) => tag.split('/')[pos] === value)) continue
            row.active[pos] = headers['event'] === 'move-in'
            if (headers['event'] === 'move-out' && !visible(row)) this.rows.delete(key)
          }
        }
      } else if (headers['control'] === 'must-refetch') {
        this.rows.clear()
      } else if (headers['control'] === 'up-to-date') {
        this.states.push(this.state())
      }
    }
  }

  /** The rows, sorted by key, as one string to compare. */
  state(): string {
    return JSON.stringify([...this.rows.entries()].sort(([a], [b]) => (a < b ? -1 : 1)).map(([, row]) => row.value))
  }
}

/** A row stays while some disjunct (its tag's non-empty positions) has all positions true. */
function visible(row: Tagged): boolean {
  return [...row.tags].some((tag) =>
    tag
      .split('/')
      .map((slot, i) => [slot, i] as const)
      .filter(([slot]) => slot !== '')
      .every(([, i]) => row.active[i]),
  )
}
