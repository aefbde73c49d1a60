/**
 * A transaction's entries for a shape with subqueries (docs/ARCHITECTURE.md I25). The router
 * gathers every change of the shape's tables for it (the outer table's and the inner tables'),
 * and hands them here whole at commit: `ShapeSubqueries.finish` applies them to the results and
 * encodes the messages; a value that entered a result needs its outer rows read before the
 * messages are whole. What cannot be followed exactly ends the shape (`invalidate`).
 */
import type { Logger } from '../../log.js'
import type { Lsn } from '../../pg/lsn.js'
import type { Change } from '../../replication/transaction.js'
import type { ShapeAppend } from '../../storage/shape-log-store.js'
import type { ActiveShape } from '../active-shape.js'
import { contextOf } from '../shape-entries.js'
import type { Visibility } from '../xid-visibility.js'
import type { SubqueryMessage, TakenChange } from './shape-subqueries.js'

export interface SubqueryCommitsOptions {
  readonly invalidate: (shape: ActiveShape, reason: string) => void
  /** Routed transactions a snapshot does not show yet: a move-in's read waits for them (as I2). */
  readonly missed: (visibility: Visibility) => readonly number[]
  readonly log: Logger
}

export interface SubqueryTx {
  readonly xid: number
  readonly commitLsn: Lsn
  readonly changes: readonly TakenChange[]
}

/** Whether a TRUNCATE ends the shape: its own table, or one its subqueries read. */
export function truncates(shape: ActiveShape, change: Extract<Change, { kind: 'truncate' }>): boolean {
  const { schema, name } = shape.table.table
  return change.relations.some((r) => (r.schema === schema && r.name === name) || shape.subqueries!.reads(r))
}

export class SubqueryCommits {
  readonly #options: SubqueryCommitsOptions

  constructor(options: SubqueryCommitsOptions) {
    this.#options = options
  }

  /** A streamed transaction: a move-in's rows are read here, while the stream waits. */
  async finish(shape: ActiveShape, tx: SubqueryTx, lsnText?: string): Promise<ShapeAppend | undefined> {
    const subqueries = shape.subqueries!
    const result = subqueries.finish({ ...tx, context: contextOf(shape, tx, lsnText) })
    if ('invalidate' in result) return this.#end(shape, result.invalidate)
    if (result.moveIn) {
      try {
        result.moveIn.complete(await subqueries.readMoveIns(result.moveIn.moves, this.#options.missed))
      } catch (error) {
        this.#options.log.warn({ handle: shape.stored.handle, err: (error as Error).message }, 'reading the rows a subquery moved in failed; the shape is dropped and its clients refetch')
        return this.#end(shape, 'reading the rows a subquery moved in failed')
      }
    }
    return appendOf(shape, tx, result.messages)
  }

  /** A transaction held while the snapshot started: nothing can be read here, so a move-in ends the shape. */
  finishHeld(shape: ActiveShape, tx: { readonly xid: number; readonly commitLsn: Lsn; readonly changes: readonly Change[] }): ShapeAppend | undefined {
    const changes = tx.changes.map((change, position) => ({ change, position }))
    if (changes.some(({ change }) => change.kind === 'truncate' && truncates(shape, change))) return this.#end(shape, 'table truncated')
    const result = shape.subqueries!.finish({ xid: tx.xid, commitLsn: tx.commitLsn, changes, context: contextOf(shape, tx) })
    if ('invalidate' in result) return this.#end(shape, result.invalidate)
    if (result.moveIn) return this.#end(shape, 'rows moved into it while its snapshot was being taken')
    return appendOf(shape, tx, result.messages)
  }

  #end(shape: ActiveShape, reason: string): undefined {
    this.#options.invalidate(shape, reason)
    return undefined
  }
}

function appendOf(shape: ActiveShape, tx: { readonly commitLsn: Lsn }, messages: readonly SubqueryMessage[]): ShapeAppend | undefined {
  if (messages.length === 0) return undefined
  return { shapeId: shape.stored.id, tx: tx.commitLsn, firstOp: 0, entries: messages.map((message) => JSON.stringify(message)) }
}
