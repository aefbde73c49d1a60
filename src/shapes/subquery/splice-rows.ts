/**
 * Puts the rows a move-in read into its transaction's messages (docs/ARCHITECTURE.md I25). The
 * read's snapshot shows the transaction, and maybe later ones, so its version of a row is as new
 * as the transaction's or newer; each row is sent once, as the read has it. A row the
 * transaction itself inserted or updated takes its message's place, keeping its operation (an
 * update keeps the old row's tags it removes, so a client drops them); any other comes after.
 */
import { OPERATIONS } from '../../protocol/constants.js'
import type { ChangeMessage } from '../change-encoder.js'
import type { SubqueryMessage } from './shape-subqueries.js'

export function spliceRows(messages: readonly SubqueryMessage[], rows: readonly ChangeMessage[]): SubqueryMessage[] {
  const byKey = new Map(rows.map((row) => [row.key, row]))
  const last = new Map<string, number>()
  messages.forEach((message, i) => {
    if ('key' in message) last.set(message.key, i)
  })
  const out: SubqueryMessage[] = []
  messages.forEach((message, i) => {
    if (!('key' in message)) return void out.push(message)
    const row = byKey.get(message.key)
    const operation = message.headers.operation
    if (!row || operation === OPERATIONS.delete) return void out.push(message)
    // Earlier messages for the row are kept: the read's version replaces the last one only.
    if (last.get(message.key) !== i) return void out.push(message)
    byKey.delete(message.key)
    out.push(operation === OPERATIONS.insert ? row : asUpdate(message, row))
  })
  return [...out, ...byKey.values()]
}

function asUpdate(message: ChangeMessage, row: ChangeMessage): ChangeMessage {
  const tags = row.headers.tags ?? []
  const removed = [...new Set([...(message.headers.removed_tags ?? []), ...(message.headers.tags ?? [])])].filter((tag) => !tags.includes(tag))
  const headers = { ...message.headers, tags, active_conditions: row.headers.active_conditions ?? [], ...(removed.length > 0 ? { removed_tags: removed } : {}) }
  if (removed.length === 0) delete (headers as { removed_tags?: unknown }).removed_tags
  return message.old_value ? { key: message.key, value: row.value, old_value: message.old_value, headers } : { key: message.key, value: row.value, headers }
}
