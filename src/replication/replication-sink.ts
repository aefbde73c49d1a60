/**
 * Where the replication stream hands transactions (docs/ARCHITECTURE.md: Data flow): the router.
 */
import type { Lsn } from '../pg/lsn.js'
import type { RelationMessage } from './pgoutput-messages.js'
import type { Change, TransactionBegin, TransactionCommit } from './transaction.js'

/**
 * Transactions in commit order, a piece at a time: a transaction of a million rows arrives as
 * many `onChanges` calls between `onBegin` and `onCommit`, so it never has to be held whole. The
 * stream waits for each returned promise (backpressure). A new `onBegin` without `onCommit` means
 * the previous transaction will be sent again (the stream reconnected).
 */
export interface ReplicationSink {
  onBegin(begin: TransactionBegin): void
  /** The transaction's next changes; positions continue from the previous call. */
  onChanges(changes: readonly Change[]): Promise<void> | void
  onCommit(commit: TransactionCommit): Promise<void> | void
  /** PostgreSQL has sent everything before `walEnd` and no transaction is open. */
  onIdle(walEnd: Lsn): void
  /** A table's description, sent before its first change and again after its schema changes. */
  onRelation?(relation: RelationMessage): void
}
