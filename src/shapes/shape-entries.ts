/**
 * One shape's log entries of one transaction, and the one place where a shape's filter decides,
 * change by change, what the shape gets: a change to another table is nothing to it, a TRUNCATE
 * of its table ends it (docs/ARCHITECTURE.md I9), and a row change goes through the encoder, which
 * applies the `where` and the column list. Used for transactions as they stream and for held
 * transactions released when a snapshot starts, so both give the same entries.
 */
import type { Lsn } from '../pg/lsn.js'
import type { Change, Transaction } from '../replication/transaction.js'
import type { ShapeAppend } from '../storage/shape-log-store.js'
import type { ActiveShape } from './active-shape.js'
import { encodeChange, encodeContext, type ChangeMessage, type EncodeContext, type ShapeEncoding } from './change-encoder.js'
import { relationPrefix } from './row-key.js'

/** What `add` answers for a TRUNCATE of the shape's table: the shape cannot continue. */
export const TRUNCATED = 'truncated'

export class ShapeEntries {
  readonly #shapeId: number
  readonly #schema: string
  readonly #name: string
  readonly #context: EncodeContext
  readonly #tx: Lsn
  /** The shape's last message so far, held back until commit: it gets `last: true`. */
  #pending: ChangeMessage | undefined
  /** Wire JSON of the entries made and not yet taken; the first is at op `#firstOp`. */
  #entries: string[] = []
  #firstOp = 0
  #op = 0

  constructor(shape: ActiveShape, tx: { readonly xid: number; readonly commitLsn: Lsn }, lsnText = String(tx.commitLsn)) {
    this.#shapeId = shape.stored.id
    this.#schema = shape.table.table.schema
    this.#name = shape.table.table.name
    this.#context = contextOf(shape, tx, lsnText)
    this.#tx = tx.commitLsn
  }

  /** Encodes one change at its position in the transaction: the entries it made, or TRUNCATED. */
  add(change: Change, position: number): number | typeof TRUNCATED {
    if (change.kind === 'truncate') return change.relations.some((r) => r.schema === this.#schema && r.name === this.#name) ? TRUNCATED : 0
    if (change.relation.schema !== this.#schema || change.relation.name !== this.#name) return 0
    let made = 0
    for (const message of encodeChange(this.#context, change, position)) {
      if (this.#pending) {
        this.#push(this.#pending)
        made++
      }
      this.#pending = message
    }
    return made
  }

  /** The entries made so far but the pending last one, to stage before the commit. */
  take(): ShapeAppend | undefined {
    if (this.#entries.length === 0) return undefined
    const append = { shapeId: this.#shapeId, tx: this.#tx, firstOp: this.#firstOp, entries: this.#entries }
    this.#entries = []
    this.#firstOp = this.#op
    return append
  }

  /** At commit: every entry not yet taken, the last one marked `last`. */
  finish(): ShapeAppend | undefined {
    if (this.#pending) {
      this.#pending.headers.last = true
      this.#push(this.#pending)
      this.#pending = undefined
    }
    return this.take()
  }

  #push(message: ChangeMessage): void {
    this.#entries.push(JSON.stringify(message))
    this.#op++
  }
}

/** A whole (held) transaction's entries for one shape: none, or TRUNCATED. */
export function entriesOf(shape: ActiveShape, tx: Transaction): ShapeAppend | typeof TRUNCATED | undefined {
  const entries = new ShapeEntries(shape, tx)
  for (let position = 0; position < tx.changes.length; position++) {
    if (entries.add(tx.changes[position]!, position) === TRUNCATED) return TRUNCATED
  }
  return entries.finish()
}

/** A shape's encoding context for one transaction. */
export function contextOf(shape: ActiveShape, tx: { readonly xid: number; readonly commitLsn: Lsn }, lsnText = String(tx.commitLsn)): EncodeContext {
  return encodeContext(encodingOf(shape), lsnText, tx.xid)
}

const encodings = new WeakMap<ActiveShape, ShapeEncoding>()

/** The parts of a shape's encoding context that never change, made once, when it first gets a change. */
function encodingOf(shape: ActiveShape): ShapeEncoding {
  let encoding = encodings.get(shape)
  if (!encoding) {
    const { schema, name } = shape.table.table
    encoding = {
      keyPrefix: relationPrefix(shape.table.table),
      relationName: [schema, name] as const,
      primaryKey: shape.table.primaryKey,
      replica: shape.stored.definition.replica,
      matches: shape.where?.matches,
      columns: shape.stored.definition.columns ? new Set(shape.table.columns.map((c) => c.name)) : undefined,
    }
    encodings.set(shape, encoding)
  }
  return encoding
}
