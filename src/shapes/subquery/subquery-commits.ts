/**
 * A transaction's entries for a shape with subqueries (docs/ARCHITECTURE.md I25). The router
 * gathers every change of the shape's tables for it (the outer table's and the inner tables'),
 * and hands them here whole at commit: `ShapeSubqueries.finish` applies them to the results and
 * encodes the messages. What cannot be followed exactly ends the shape (`invalidate`).
 *
 * A value that entered a result needs its outer rows read before the transaction's messages are
 * whole. That read does not hold up replication: it runs at its own snapshot while the stream
 * goes on, and only this shape waits. Its later transactions queue behind the read (`heldFrom`
 * caps its up-to-date meanwhile, I16); once the rows are in and the stream has passed every
 * transaction the read's snapshot shows, the transaction's messages and then the queued
 * transactions go to storage in commit order, in one storage commit (`commitReleased`, as held
 * transactions do). Queued transactions the read's snapshot shows are evaluated as if the value
 * had not entered, so the rows read are not sent twice; the others apply on top of them (the xid
 * rule of the initial snapshot, I3).
 */
import type { Logger } from '../../log.js'
import type { Lsn } from '../../pg/lsn.js'
import type { Change } from '../../replication/transaction.js'
import type { ShapeAppend } from '../../storage/shape-log-store.js'
import type { ActiveShape } from '../active-shape.js'
import { contextOf } from '../shape-entries.js'
import type { RoutingMark } from '../unconfirmed-commits.js'
import type { Visibility } from '../xid-visibility.js'
import type { FinishResult, QueuedTransaction, SubqueryMessage } from './shape-subqueries.js'

export interface SubqueryCommitsOptions {
  readonly invalidate: (shape: ActiveShape, reason: string) => void
  /** Where the stream of routed transactions is: a move-in's read must show every one before it. */
  readonly mark: () => RoutingMark
  /** Transactions routed before `mark` that a snapshot does not show yet (as I2). */
  readonly missed: (visibility: Visibility, mark: RoutingMark) => readonly number[]
  /** Entries of transactions whose commit has passed, in one storage batch (they move no LSN); resolves once readable. */
  readonly commitReleased: (...appends: ShapeAppend[]) => Promise<void>
  /**
   * Row changes held at most, over all shapes with subqueries (SLUICE_MAX_HELD_CHANGES, I11): a
   * transaction's changes until its commit, and transactions queued behind a move-in.
   */
  readonly maxHeldChanges: number
  readonly log: Logger
}

/** Whether a TRUNCATE ends the shape: its own table, or one its subqueries read. */
export function truncates(shape: ActiveShape, change: Extract<Change, { kind: 'truncate' }>): boolean {
  const { schema, name } = shape.table.table
  return change.relations.some((r) => (r.schema === schema && r.name === name) || shape.subqueries!.reads(r))
}

export class SubqueryCommits {
  readonly #options: SubqueryCommitsOptions
  /** Move-in reads in flight, so stopping can wait for them. */
  readonly #reads = new Set<Promise<void>>()
  readonly #held = new Map<ActiveShape, number>()
  /** How far the stream has handed on: every transaction whose commit ends before it has been taken. */
  #position = 0n as Lsn
  /** Move-ins whose rows are in, waiting for the stream to pass their snapshot's WAL position. */
  readonly #waiting = new Set<{ readonly lsn: Lsn; readonly resolve: (passed: boolean) => void }>()
  /** Set while `settled` waits: replication has stopped, so the stream will not pass another position. */
  #stopping = false
  #heldTotal = 0

  constructor(options: SubqueryCommitsOptions) {
    this.#options = options
  }

  /**
   * A committed transaction of the shape: its entries now, or undefined when it has none or they
   * wait for a move-in's rows (they are then handed to `commitReleased` in order).
   */
  take(shape: ActiveShape, tx: QueuedTransaction): ShapeAppend | undefined {
    const subqueries = shape.subqueries!
    if (subqueries.heldFrom !== undefined) {
      subqueries.queue(tx)
      return undefined
    }
    const finished = this.#finish(shape, tx)
    if (!finished || !('moveIn' in finished)) return finished
    subqueries.startMoving(tx.commitLsn)
    const moving = this.#move(shape, finished)
    this.#reads.add(moving)
    void moving.finally(() => this.#reads.delete(moving))
    return undefined
  }

  /**
   * Counts changes kept for a shape (`take` releases them once its transaction is finished).
   * Past the limit the shape holding the most is dropped: its clients refetch, and memory stays
   * bounded however large a transaction or however slow a move-in.
   */
  hold(shape: ActiveShape, changes: number): void {
    this.#held.set(shape, (this.#held.get(shape) ?? 0) + changes)
    this.#heldTotal += changes
    if (this.#heldTotal <= this.#options.maxHeldChanges) return
    let largest: ActiveShape | undefined
    let most = 0
    for (const [candidate, count] of this.#held) if (count > most) [largest, most] = [candidate, count]
    if (!largest) return
    this.leave(largest)
    this.#options.log.warn(
      { handle: largest.stored.handle, heldChanges: most, limit: this.#options.maxHeldChanges },
      'dropping a shape with subqueries that held more changes than SLUICE_MAX_HELD_CHANGES allows (a large transaction, or many behind a move-in); its clients refetch',
    )
    this.#options.invalidate(largest, 'too many changes to hold for a shape with subqueries')
  }

  /** Changes no longer held: finished, or of a transaction that will be sent again. */
  release(shape: ActiveShape, changes: number): void {
    const count = this.#held.get(shape)
    if (count === undefined) return
    const left = Math.max(0, count - changes)
    if (left === 0) this.#held.delete(shape)
    else this.#held.set(shape, left)
    this.#heldTotal -= count - left
  }

  /** The shape is gone: nothing of it is held any more. */
  leave(shape: ActiveShape): void {
    this.release(shape, Number.POSITIVE_INFINITY)
  }

  /** A transaction held while the snapshot started, in order: as `take`, already committed. */
  takeHeld(shape: ActiveShape, tx: { readonly xid: number; readonly commitLsn: Lsn; readonly changes: readonly Change[] }): void {
    if (tx.changes.some((change) => change.kind === 'truncate' && truncates(shape, change))) {
      this.#options.invalidate(shape, 'table truncated')
      return
    }
    const changes = tx.changes.flatMap((change, position) => (change.kind === 'truncate' ? [] : [{ change, position }]))
    this.hold(shape, changes.length)
    if (shape.dropped) return
    const append = this.take(shape, { xid: tx.xid, commitLsn: tx.commitLsn, lsnText: String(tx.commitLsn), changes })
    if (append) void this.#options.commitReleased(append)
  }

  /** The stream has handed on every transaction whose commit ends at or before `position`. */
  advance(position: Lsn): void {
    if (position > this.#position) this.#position = position
    for (const waiting of this.#waiting) {
      if (waiting.lsn > this.#position) continue
      this.#waiting.delete(waiting)
      waiting.resolve(true)
    }
  }

  /**
   * Resolves once no move-in read is in flight; called when replication has stopped. A move-in the
   * stream has not passed is given up, its read's rows and the transactions behind it unwritten:
   * they cannot be put in the log whole (I26), and what a restart finds is what kill -9 leaves,
   * which resuming the shape already makes good (its differences, I25). One still reading when
   * this is called is given up when its rows arrive: a wait for the stream then would never end.
   */
  async settled(): Promise<void> {
    this.#stopping = true
    try {
      for (const waiting of this.#waiting) waiting.resolve(false)
      this.#waiting.clear()
      while (this.#reads.size > 0) await Promise.allSettled([...this.#reads])
    } finally {
      // A replication history reset stops the router and goes on with new shapes.
      this.#stopping = false
    }
  }

  /**
   * Whether the stream has handed on every transaction the read's snapshot shows (each commit it
   * shows ends at or before the WAL position read after it): they are all queued then, and go
   * into the log with the rows, so no reader sees the rows newer than the log (I4). False when
   * replication stopped first.
   */
  #streamPast(lsn: Lsn): Promise<boolean> {
    if (lsn <= this.#position) return Promise.resolve(true)
    if (this.#stopping) return Promise.resolve(false)
    return new Promise((resolve) => this.#waiting.add({ lsn, resolve }))
  }

  /** The transaction's entries, or the move-in they wait for. */
  #finish(shape: ActiveShape, tx: QueuedTransaction): ShapeAppend | Moving | undefined {
    this.release(shape, tx.changes.length)
    const result = shape.subqueries!.finish({ ...tx, context: contextOf(shape, tx, tx.lsnText) })
    if ('invalidate' in result) {
      this.#options.invalidate(shape, result.invalidate)
      return undefined
    }
    if (!result.moveIn) return appendOf(shape, tx, result.messages)
    return { tx, messages: result.messages, moveIn: result.moveIn, mark: this.#options.mark() }
  }

  /**
   * Reads a move-in's rows, then hands on its transaction and those queued behind it, reading the
   * rows of each further move-in among them in turn. What is read so far becomes readable only
   * once no move-in's snapshot can show a transaction still to come (docs/ARCHITECTURE.md I26):
   * rows read at a snapshot that shows a transaction must not be seen before it.
   */
  async #move(shape: ActiveShape, first: Moving): Promise<void> {
    const subqueries = shape.subqueries!
    const appends: ShapeAppend[] = []
    let moving: Moving | undefined = first
    for (;;) {
      if (moving) {
        const { moveIn, mark } = moving
        try {
          const read = await subqueries.readMoveIns(moveIn.moves, (visibility) => this.#options.missed(visibility, mark))
          if (shape.dropped) return
          const reason = moveIn.complete(read)
          if (reason !== undefined) {
            this.#options.invalidate(shape, reason)
            return
          }
          if (!(await this.#streamPast(read.lsn as Lsn)) || shape.dropped) return
        } catch (error) {
          if (shape.dropped) return
          this.#options.log.warn({ handle: shape.stored.handle, err: (error as Error).message }, 'reading the rows a subquery moved in failed; the shape is dropped and its clients refetch')
          this.#options.invalidate(shape, 'reading the rows a subquery moved in failed')
          return
        }
        const append = appendOf(shape, moving.tx, moving.messages)
        if (append) appends.push(append)
        moving = undefined
      }
      for (let next = subqueries.nextQueued(); next && !shape.dropped; next = subqueries.nextQueued()) {
        const finished = this.#finish(shape, next)
        if (finished && 'moveIn' in finished) {
          moving = finished
          break
        }
        if (finished) appends.push(finished)
      }
      if (shape.dropped) return
      if (moving && subqueries.mayShowFrom(moving.tx.commitLsn)) continue
      // The shape's up-to-date stays below what it still has to append until all of it is readable (I16).
      if (appends.length > 0) await this.#options.commitReleased(...appends.splice(0))
      if (shape.dropped) return
      if (moving) subqueries.startMoving(moving.tx.commitLsn)
      else if (!subqueries.hasQueued) break
    }
    subqueries.stopMoving()
  }
}

/** A transaction whose messages wait for the rows its move-in brings in. */
interface Moving {
  readonly tx: QueuedTransaction
  readonly messages: SubqueryMessage[]
  readonly moveIn: NonNullable<Extract<FinishResult, { messages: unknown }>['moveIn']>
  /** Where the stream was when it finished: the read's snapshot must show every transaction before. */
  readonly mark: RoutingMark
}

function appendOf(shape: ActiveShape, tx: { readonly commitLsn: Lsn }, messages: readonly SubqueryMessage[]): ShapeAppend | undefined {
  if (messages.length === 0) return undefined
  return { shapeId: shape.stored.id, tx: tx.commitLsn, firstOp: 0, entries: messages.map((message) => JSON.stringify(message)) }
}
