/**
 * What a pgoutput message looked like, for the log line of a broken stream: its tag and
 * positions, never its row values.
 */
import type { PgoutputMessage } from './pgoutput-messages.js'

export function summarizeMessage(message: PgoutputMessage): Record<string, unknown> {
  switch (message.tag) {
    case 'invalid':
      return { bytes: message.bytes.length, head: message.bytes.subarray(0, 32).toString('hex') }
    case 'begin':
      return { tag: message.tag, xid: message.xid, commitLsn: String(message.finalLsn) }
    case 'commit':
      return { tag: message.tag, commitLsn: String(message.commitLsn), endLsn: String(message.endLsn) }
    case 'relation':
      return { tag: message.tag, oid: message.oid, columns: message.columns.length }
    case 'insert':
      return { tag: message.tag, relation: message.relationOid, columns: message.tuple.length }
    case 'update':
    case 'delete':
      return { tag: message.tag, relation: message.relationOid, oldKind: message.oldKind, columns: (message.tag === 'update' ? message.tuple : message.old).length }
    case 'truncate':
      return { tag: message.tag, relations: message.relationOids }
    case 'other':
      return { tag: message.tag }
  }
}
