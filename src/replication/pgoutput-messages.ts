/**
 * The pgoutput (protocol version 1) messages Sluice uses, decoded with column values kept as
 * PostgreSQL's text output — exactly what goes on the wire — and LSNs as `bigint`.
 */
import type { Lsn } from '../pg/lsn.js'

/** A column value: text output, SQL NULL, or "unchanged TOASTed value, not sent". */
export type TupleValue = string | null | typeof UNCHANGED_TOAST
export const UNCHANGED_TOAST: unique symbol = Symbol('unchanged-toast')
export type Tuple = readonly TupleValue[]

export interface RelationColumn {
  readonly name: string
  readonly typeOid: number
  readonly isKey: boolean
}

export interface RelationMessage {
  readonly tag: 'relation'
  readonly oid: number
  readonly schema: string
  readonly name: string
  readonly replicaIdentity: string
  readonly columns: readonly RelationColumn[]
}

/** How an update or delete carries the old row: its key columns only (`K`) or all of it (`O`). */
export type OldTupleKind = 'K' | 'O'

export type PgoutputMessage =
  | { readonly tag: 'begin'; readonly finalLsn: Lsn; readonly xid: number }
  | { readonly tag: 'commit'; readonly commitLsn: Lsn; readonly endLsn: Lsn }
  | RelationMessage
  | { readonly tag: 'insert'; readonly relationOid: number; readonly tuple: Tuple }
  | { readonly tag: 'update'; readonly relationOid: number; readonly oldKind?: OldTupleKind; readonly old: Tuple | undefined; readonly tuple: Tuple }
  | { readonly tag: 'delete'; readonly relationOid: number; readonly oldKind?: OldTupleKind; readonly old: Tuple }
  | { readonly tag: 'truncate'; readonly relationOids: readonly number[] }
  /** Type ('Y') and origin ('O') messages: well-formed, of no use to Sluice. */
  | { readonly tag: 'other' }
  /** Bytes that are not a pgoutput message: the stream cannot be trusted past them. */
  | { readonly tag: 'invalid'; readonly reason: string; readonly bytes: Buffer }
