/**
 * Transactions the router has taken in that PostgreSQL may still show as running. A commit is
 * replicated once its record is in the WAL, and its backend leaves the proc array only after
 * that (`xid-visibility.ts`): a shape that joins the router meanwhile and takes its snapshot
 * would find the transaction in neither its snapshot nor its log. Its snapshot must be taken
 * again once every transaction routed before it joined is visible (docs/ARCHITECTURE.md I2, I3,
 * step 1). A transaction is forgotten as soon as any snapshot shows it, which bounds this to
 * the transactions routed since the last look plus those still committing.
 */
import { isVisibleInSnapshot, type Visibility } from './xid-visibility.js'

/** A point in the router's stream of transactions: those recorded before it, and the rest. */
export type RoutingMark = number & { readonly __brand: 'RoutingMark' }

export class UnconfirmedCommits {
  /** xid → mark of the transaction's first routing (a replay keeps the first). */
  readonly #routedAt = new Map<number, RoutingMark>()
  #next = 0

  /** A transaction is being routed (in stream order). */
  record(xid: number): void {
    if (!this.#routedAt.has(xid)) this.#routedAt.set(xid, this.#next as RoutingMark)
    this.#next++
  }

  /** The mark of the next transaction to be recorded. */
  get next(): RoutingMark {
    return this.#next as RoutingMark
  }

  get size(): number {
    return this.#routedAt.size
  }

  /** Forgets the transactions this snapshot shows: no later snapshot can miss them. */
  confirm(visibility: Visibility): void {
    for (const xid of this.#routedAt.keys()) if (isVisibleInSnapshot(xid, visibility)) this.#routedAt.delete(xid)
  }

  /** xids of transactions recorded before `mark` that the snapshot does not show. */
  missedBy(visibility: Visibility, mark: RoutingMark): number[] {
    const missed: number[] = []
    for (const [xid, routedAt] of this.#routedAt) if (routedAt < mark && !isVisibleInSnapshot(xid, visibility)) missed.push(xid)
    return missed
  }
}
