/**
 * What a plain HTTP follower received, bounded: its last responses (status, handle, offsets, the
 * HTTP worker that answered, the changes' keys and LSNs) and each row's last few changes, so a
 * mismatch can set what the client got for a row, and from which response and worker, beside
 * the history's versions of that row.
 */
import type { WireMessage } from '../test/support/follower.js'

const RESPONSES = 24
const CHANGES_PER_ROW = 4
/** Rows remembered; the least recently changed are forgotten first (a bulk table's snapshot). */
const ROWS = 20_000
/** Changes named in one response's line; the rest are counted. */
const CHANGES_PER_LINE = 6
const VALUE_CHARS = 120
const WORKER_HEADER = 'x-sluice-worker'

interface RowChange {
  readonly response: number
  readonly atMs: number
  readonly worker: string
  readonly handle: string
  readonly lsn: string
  readonly op: string
  readonly txid: string
  readonly value: string
}

export class HttpTrace {
  #responses = 0
  readonly #lines: string[] = []
  /** By message key: the last changes of that row, across handles. */
  readonly #rows = new Map<string, RowChange[]>()

  constructor(readonly startedAt: number) {}

  response(request: URL, response: Response, messages: readonly WireMessage[]): void {
    const n = ++this.#responses
    const atMs = Date.now() - this.startedAt
    const worker = response.headers.get(WORKER_HEADER) ?? 'owner'
    const handle = response.headers.get('electric-handle') ?? request.searchParams.get('handle') ?? '?'
    const changes: string[] = []
    const controls: string[] = []
    let count = 0
    for (const message of messages) {
      const control = message.headers['control']
      if (control !== undefined) {
        controls.push(String(control))
        continue
      }
      const change = {
        response: n,
        atMs,
        worker,
        handle,
        lsn: message.headers['lsn'] === undefined ? 'snapshot' : `${String(message.headers['lsn'])}/${String(message.headers['op_position'])}`,
        op: String(message.headers['operation']),
        txid: JSON.stringify(message.headers['txids'] ?? null),
        value: JSON.stringify(message.value ?? null).slice(0, VALUE_CHARS),
      }
      this.#remember(message.key!, change)
      if (count++ < CHANGES_PER_LINE) changes.push(`${message.key} ${change.op} ${change.lsn}`)
    }
    const more = count > CHANGES_PER_LINE ? ` +${count - CHANGES_PER_LINE} more` : ''
    const live = request.searchParams.get('live') === 'true' ? ' live' : ''
    const next = response.headers.get('electric-offset') ?? '-'
    this.#push(
      `#${n} ${fmt(atMs)} ${response.status}${live} worker ${worker} ${handle} ${request.searchParams.get('offset')} -> ${next}: ` +
        `${count} changes${count > 0 ? ` [${changes.join(', ')}${more}]` : ''}${controls.length > 0 ? ` ${controls.join(',')}` : ''}`,
    )
  }

  note(text: string): void {
    this.#push(`${fmt(Date.now() - this.startedAt)} ${text}`)
  }

  /** The last responses, oldest first. */
  toString(): string {
    return this.#lines.join(' | ')
  }

  /** The changes the client got for the row whose primary key is `id`, oldest first. */
  row(id: string): string {
    const changes = [...this.#rows].filter(([key]) => key.endsWith(`/"${id}"`)).flatMap(([, list]) => list)
    if (changes.length === 0) return 'none received'
    return changes.map((c) => `${c.op} ${c.lsn} txid ${c.txid} ${c.value} (response #${c.response}, worker ${c.worker}, ${c.handle}, ${fmt(c.atMs)})`).join('; ')
  }

  #remember(key: string, change: RowChange): void {
    const list = this.#rows.get(key) ?? []
    this.#rows.delete(key)
    list.push(change)
    if (list.length > CHANGES_PER_ROW) list.shift()
    this.#rows.set(key, list)
    if (this.#rows.size > ROWS) this.#rows.delete(this.#rows.keys().next().value!)
  }

  #push(line: string): void {
    this.#lines.push(line)
    if (this.#lines.length > RESPONSES) this.#lines.shift()
  }
}

function fmt(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`
}
