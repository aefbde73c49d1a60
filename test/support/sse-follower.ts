/**
 * A browser-style client of the SSE extension: a plain `EventSource` (the `eventsource` package)
 * on `offset=-1&live=true&live_sse=true` that applies every event to a row map and records
 * anything that would betray a gap or a duplicate.
 */
import { EventSource, type EventSourceInit } from 'eventsource'

interface Message {
  key?: string
  value?: Record<string, string | null>
  headers: Record<string, unknown>
}

export class SseFollower {
  readonly rows = new Map<string, Record<string, string | null>>()
  /** `lsn/op_position` of every replicated change applied since the last must-refetch. */
  readonly applied = new Set<string>()
  readonly duplicates: string[] = []
  readonly errors: string[] = []
  opens = 0
  upToDates = 0
  mustRefetches = 0
  lastEventId = ''
  /** The snapshot the rows were built on (its visibility), since the last must-refetch. */
  snapshotEnd: { xmin: string; xmax: string; xip_list: string[] } | undefined
  /** xid of the last replicated change applied since the last must-refetch. */
  lastXid: number | undefined
  /** Hears each up-to-date, once the rows are at a transaction boundary. */
  onUpToDate: (() => void) | undefined
  readonly source: EventSource | undefined

  /** Without a URL it only applies the messages given to `apply`. */
  constructor(url?: string, init?: EventSourceInit) {
    if (url === undefined) return
    this.source = new EventSource(url, init)
    this.source.onopen = () => this.opens++
    this.source.onmessage = (event) => {
      if (event.lastEventId) this.lastEventId = event.lastEventId
      this.apply(JSON.parse(event.data as string) as Message)
    }
  }

  apply(message: Message): void {
    const control = message.headers['control']
    if (control === 'up-to-date') {
      this.upToDates++
      this.onUpToDate?.()
      return
    }
    if (control === 'must-refetch') {
      this.mustRefetches++
      this.rows.clear()
      this.applied.clear()
      this.snapshotEnd = undefined
      this.lastXid = undefined
      return
    }
    if (control === 'snapshot-end') {
      this.snapshotEnd = message.headers as never
      return
    }
    if (control !== undefined) return
    const key = message.key!
    const lsn = message.headers['lsn']
    if (lsn !== undefined) {
      const id = `${String(lsn)}/${String(message.headers['op_position'])}`
      if (this.applied.has(id)) this.duplicates.push(id)
      this.applied.add(id)
      this.lastXid = Number((message.headers['txids'] as (number | string)[])[0])
    }
    const operation = message.headers['operation']
    if (operation === 'insert') {
      if (this.rows.has(key) && lsn === undefined) this.duplicates.push(`snapshot ${key}`)
      this.rows.set(key, { ...message.value })
    } else if (operation === 'update') {
      const existing = this.rows.get(key)
      if (!existing) this.errors.push(`update of a missing row ${key}`)
      this.rows.set(key, { ...existing, ...message.value })
    } else if (operation === 'delete') {
      if (!this.rows.delete(key)) this.errors.push(`delete of a missing row ${key}`)
    }
  }

  /** Rows as `id → title`, for comparison with the table. */
  titles(): Record<string, string | null> {
    return Object.fromEntries([...this.rows.values()].map((row) => [row['id']!, row['title'] ?? null]))
  }

  close(): void {
    this.source?.close()
  }
}
