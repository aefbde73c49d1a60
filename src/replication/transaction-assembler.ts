/**
 * Turns one connection's pgoutput messages into transactions for the sink, in pieces as they
 * arrive (a transaction is never held whole). Every message is checked against the stream's rules
 * first (`stream-integrity.ts`, docs/ARCHITECTURE.md I18): one that breaks them throws before
 * anything of it is applied. One instance per connection: PostgreSQL describes relations again on
 * a new one.
 */
import type { PgoutputMessage, RelationMessage } from './pgoutput-messages.js'
import type { ReplicationSink } from './replication-sink.js'
import { StreamIntegrity } from './stream-integrity.js'
import type { Change, TransactionCommit } from './transaction.js'

/** Changes handed on per `onChanges` call. */
const CHANGES_PER_BATCH = 2_000

interface OpenTransaction {
  readonly xid: number
  changes: Change[]
}

export class TransactionAssembler {
  readonly #sink: ReplicationSink
  readonly #integrity = new StreamIntegrity()
  readonly #relations = new Map<number, RelationMessage>()
  #open: OpenTransaction | undefined

  constructor(sink: ReplicationSink) {
    this.#sink = sink
  }

  /** A transaction is open: a keepalive's WAL end is not a point where the stream is idle. */
  get inTransaction(): boolean {
    return this.#open !== undefined
  }

  /**
   * Applies `message`, or throws StreamIntegrityError without applying it. Returns a promise
   * only when it hands changes on (most messages do not: see `task-queue.ts`).
   */
  apply(message: PgoutputMessage): Promise<void> | void {
    this.#integrity.check(message)
    switch (message.tag) {
      case 'begin':
        this.#open = { xid: message.xid, changes: [] }
        this.#sink.onBegin({ xid: message.xid, commitLsn: message.finalLsn })
        return
      case 'relation':
        this.#relations.set(message.oid, message)
        // In stream order: shapes whose table changed stop before the first change under the new schema.
        this.#sink.onRelation?.(message)
        return
      // From here on the integrity check has made sure of the open transaction and the relations.
      case 'insert':
      case 'update':
      case 'delete': {
        const open = this.#open!
        const relation = this.#relations.get(message.relationOid)!
        if (message.tag === 'insert') open.changes.push({ kind: 'insert', relation, record: message.tuple })
        else if (message.tag === 'update') open.changes.push({ kind: 'update', relation, old: message.old, record: message.tuple })
        else open.changes.push({ kind: 'delete', relation, old: message.old })
        if (open.changes.length >= CHANGES_PER_BATCH) return this.#handOn(open)
        return
      }
      case 'truncate': {
        const relations = message.relationOids.map((oid) => this.#relations.get(oid)!)
        this.#open!.changes.push({ kind: 'truncate', relations })
        return
      }
      case 'commit': {
        const open = this.#open!
        this.#open = undefined
        return this.#commit(open, { xid: open.xid, commitLsn: message.commitLsn, endLsn: message.endLsn })
      }
      case 'other':
      case 'invalid':
        return
    }
  }

  async #commit(open: OpenTransaction, commit: TransactionCommit): Promise<void> {
    await this.#handOn(open)
    await this.#sink.onCommit(commit)
  }

  async #handOn(open: OpenTransaction): Promise<void> {
    if (open.changes.length === 0) return
    const changes = open.changes
    open.changes = []
    await this.#sink.onChanges(changes)
  }
}
