/**
 * What `replication/` hands to the rest of Sluice: transactions, in pieces as they arrive and in
 * commit order, with rows as text output (see `pgoutput-messages.ts`).
 */
import type { Lsn } from '../pg/lsn.js'
import type { RelationMessage, Tuple } from './pgoutput-messages.js'

export type Relation = RelationMessage

export type Change =
  | { readonly kind: 'insert'; readonly relation: Relation; readonly record: Tuple }
  | { readonly kind: 'update'; readonly relation: Relation; readonly old: Tuple | undefined; readonly record: Tuple }
  | { readonly kind: 'delete'; readonly relation: Relation; readonly old: Tuple }
  | { readonly kind: 'truncate'; readonly relations: readonly Relation[] }

export interface Transaction {
  /** 32-bit xid as pgoutput sends it. */
  readonly xid: number
  readonly commitLsn: Lsn
  /** End of the commit record: the position to acknowledge once the transaction is durable. */
  readonly endLsn: Lsn
  readonly changes: readonly Change[]
}

export interface TransactionBegin {
  readonly xid: number
  /** The LSN of the commit record, known from the start: offsets are final as changes arrive. */
  readonly commitLsn: Lsn
}

export interface TransactionCommit {
  readonly xid: number
  readonly commitLsn: Lsn
  readonly endLsn: Lsn
}
