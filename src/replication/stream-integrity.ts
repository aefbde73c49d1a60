/**
 * The rules every pgoutput stream keeps, checked on each message before it is applied
 * (ARCHITECTURE I18). The stream has no checksum of its own (TCP's is weak, and a bug in a proxy,
 * a pooler or our own socket handling is not caught by it), so Sluice checks what the protocol
 * makes checkable:
 * - every message decodes exactly (`pgoutput-decoder.ts`);
 * - `Begin`/`Commit` pair up, with every change inside a transaction, and a `Commit` carries
 *   the LSN its `Begin` announced;
 * - commit LSNs only go forward on one connection;
 * - a relation id is known (from a Relation message on this connection) before it is used;
 * - a tuple has as many columns as its relation, and a REPLICA IDENTITY FULL relation's updates
 *   and deletes carry the whole old row.
 * A message that breaks one is never applied: the stream drops the connection and resumes from
 * the durable LSN. What this cannot see: a changed byte inside a value or a name, a change
 * message lost or repeated whole inside a transaction, or a relation id swapped for another
 * known one with as many columns (README: "Replication stream integrity").
 * Pure: one instance per connection.
 */
import type { Lsn } from '../pg/lsn.js'
import type { PgoutputMessage, Tuple } from './pgoutput-messages.js'

export class StreamIntegrityError extends Error {
  constructor(readonly violation: string) {
    super(`replication stream integrity: ${violation}`)
    this.name = 'StreamIntegrityError'
  }
}

interface KnownRelation {
  readonly columns: number
  readonly full: boolean
}

export class StreamIntegrity {
  readonly #relations = new Map<number, KnownRelation>()
  /** The open transaction's commit LSN, from its Begin. */
  #open: Lsn | undefined
  #lastCommit: Lsn | undefined

  /** Throws StreamIntegrityError when `message` breaks a rule; then this connection is done. */
  check(message: PgoutputMessage): void {
    switch (message.tag) {
      case 'invalid':
        throw new StreamIntegrityError(`undecodable message (${message.reason})`)
      case 'begin':
        if (this.#open !== undefined) throw new StreamIntegrityError(`Begin of a transaction (commit LSN ${message.finalLsn}) while transaction ${this.#open} is open`)
        if (this.#lastCommit !== undefined && message.finalLsn <= this.#lastCommit) {
          throw new StreamIntegrityError(`commit LSN went backwards: ${message.finalLsn} after ${this.#lastCommit}`)
        }
        this.#open = message.finalLsn
        return
      case 'commit':
        if (this.#open === undefined) throw new StreamIntegrityError(`Commit (LSN ${message.commitLsn}) outside a transaction`)
        if (message.commitLsn !== this.#open) throw new StreamIntegrityError(`Commit LSN ${message.commitLsn} differs from its Begin's ${this.#open}`)
        if (message.endLsn <= message.commitLsn) throw new StreamIntegrityError(`Commit ends at ${message.endLsn}, not after its LSN ${message.commitLsn}`)
        this.#lastCommit = message.commitLsn
        this.#open = undefined
        return
      case 'relation':
        this.#relations.set(message.oid, { columns: message.columns.length, full: message.replicaIdentity === 'f' })
        return
      case 'insert':
        this.#tuple(message.tag, this.#relation(message.tag, message.relationOid), message.tuple)
        return
      case 'update': {
        const relation = this.#relation(message.tag, message.relationOid)
        if (relation.full && message.oldKind !== 'O') throw new StreamIntegrityError(`update of REPLICA IDENTITY FULL relation ${message.relationOid} without its old row`)
        if (message.old) this.#tuple('update (old row)', relation, message.old)
        this.#tuple(message.tag, relation, message.tuple)
        return
      }
      case 'delete': {
        const relation = this.#relation(message.tag, message.relationOid)
        if (relation.full && message.oldKind !== 'O') throw new StreamIntegrityError(`delete of REPLICA IDENTITY FULL relation ${message.relationOid} without its old row`)
        this.#tuple(message.tag, relation, message.old)
        return
      }
      case 'truncate':
        this.#inTransaction(message.tag)
        for (const oid of message.relationOids) if (!this.#relations.has(oid)) throw new StreamIntegrityError(`truncate of unknown relation ${oid}`)
        return
      case 'other':
        return
    }
  }

  #inTransaction(what: string): void {
    if (this.#open === undefined) throw new StreamIntegrityError(`${what} outside a transaction`)
  }

  #relation(what: string, oid: number): KnownRelation {
    this.#inTransaction(what)
    const relation = this.#relations.get(oid)
    if (!relation) throw new StreamIntegrityError(`${what} of relation ${oid}, which no Relation message described`)
    return relation
  }

  #tuple(what: string, relation: KnownRelation, tuple: Tuple): void {
    if (tuple.length !== relation.columns) {
      throw new StreamIntegrityError(`${what} with ${tuple.length} columns for a relation of ${relation.columns}`)
    }
  }
}
