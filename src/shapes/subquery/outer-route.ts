/**
 * Routes the outer table's changes to a shape with subqueries by the subquery's own values
 * (docs/ARCHITECTURE.md I29): when every alternative of the where needs `col IN (SELECT …)`, a row
 * whose `col` is in none of the result's values cannot be in the shape, before or after, so the
 * router looks the changed row's `col` up among those values instead of handing it every change.
 *
 * The values routed by are a superset of the result's at every transaction still to be finished:
 * a value an inner change may bring in is routed by from the moment that change is routed (its
 * transaction, and those queued behind a move-in, are finished later), and one that left the
 * result stops being routed by only if no transaction routed since may have brought it back.
 */
import type { Lsn } from '../../pg/lsn.js'
import type { Change } from '../../replication/transaction.js'
import type { EqualityIndex } from '../where/equality-index.js'
import type { TupleParts } from '../where/value-set.js'
import { INTEGERS } from '../where/where-types.js'
import type { Dependency } from './dependency.js'
import type { WherePlan } from './plan.js'

/** Types whose row text is the result's value key (`subquery-key.ts`): the same text, the same value. */
const ROUTABLE = new Set<string>([...INTEGERS, 'text'])

export interface RouteKeys {
  add(key: string): void
  remove(key: string): void
}

export class OuterRoute {
  readonly column: string
  readonly dependency: Dependency
  /** Value key → commit LSN of the last transaction that may have put it in the result. */
  readonly #keys = new Map<string, Lsn>()
  #index: RouteKeys | undefined

  private constructor(column: string, dependency: Dependency) {
    this.column = column
    this.dependency = dependency
  }

  /** The route of a where, if one of its subqueries is needed by every alternative and compares a plain column. */
  static of(plan: WherePlan, byPosition: readonly (Dependency | undefined)[]): OuterRoute | undefined {
    for (const [i, position] of plan.positions.entries()) {
      const dependency = byPosition[i]
      // A nested subquery's change brings values known only once the rows between are read, too late to route by.
      if (!dependency || position.kind !== 'subquery' || position.negated || dependency.nested.length > 0) continue
      if (!plan.disjuncts.every((positions) => positions.includes(i))) continue
      const args = position.node.args
      const arg = args[0]!
      if (args.length !== 1 || arg.kind !== 'column' || arg.type.array || !ROUTABLE.has(arg.type.scalar)) continue
      return new OuterRoute(arg.name, dependency)
    }
    return undefined
  }

  /** The index to route by, from the result as loaded and every value routed since. */
  equalityIndex(): EqualityIndex {
    for (const parts of this.dependency.set.tuples()) this.#note(parts, 0n as Lsn)
    return { column: this.column, values: [...this.#keys.keys()], keyOf: (text) => text }
  }

  /** The router now routes by these keys: it is told of every key from here on. */
  attach(index: RouteKeys): void {
    this.#index = index
  }

  /** An inner change of the transaction committing at `commitLsn` is routed to the shape. */
  routed(change: Change, commitLsn: Lsn): void {
    const parts = this.dependency.tupleOf(change)
    if (parts) this.#note(parts, commitLsn)
  }

  /** A transaction touched these tuples of the result: those out of it now, and not brought back since, go. */
  finished(touched: Iterable<TupleParts>, commitLsn: Lsn): void {
    for (const parts of touched) {
      if (parts[0] === null) continue
      if (this.dependency.set.contains(parts)) {
        this.#note(parts, commitLsn)
        continue
      }
      const key = parts[0]!
      const last = this.#keys.get(key)
      if (last === undefined || last > commitLsn) continue
      this.#keys.delete(key)
      this.#index?.remove(key)
    }
  }

  #note(parts: TupleParts, commitLsn: Lsn): void {
    const key = parts[0]
    if (key === null || key === undefined) return
    const last = this.#keys.get(key)
    if (last !== undefined && last >= commitLsn) return
    this.#keys.set(key, commitLsn)
    if (last === undefined) this.#index?.add(key)
  }
}
