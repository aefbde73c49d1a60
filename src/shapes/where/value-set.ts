/**
 * The rows a subquery selects, as the outer `IN` sees them: a multiset of value tuples, each
 * tuple a key of its values' text in the type they are compared in (`subquery-key.ts`), so two
 * tuples PostgreSQL finds equal share a key. Counted, because several inner rows may give the
 * same tuple and it leaves the result only with the last of them. Tuples with a NULL are kept
 * apart: they never match, but they turn a FALSE `IN` into NULL, which `NOT IN` tells apart.
 */
export type TupleKey = string
/** One tuple's parts: a value's key, or null for NULL. */
export type TupleParts = readonly (string | null)[]

export class ValueSet {
  readonly #counts = new Map<TupleKey, number>()
  readonly #withNull = new Map<TupleKey, number>()

  /** Tuples in the set, counting each distinct one once. */
  get size(): number {
    return this.#counts.size + this.#withNull.size
  }

  get hasNullTuples(): boolean {
    return this.#withNull.size > 0
  }

  has(key: TupleKey): boolean {
    return this.#counts.has(key)
  }

  /** Adds one row's tuple; true when the tuple was not in the set before. */
  add(parts: TupleParts): boolean {
    const map = parts.includes(null) ? this.#withNull : this.#counts
    const key = tupleKey(parts)
    const count = map.get(key) ?? 0
    map.set(key, count + 1)
    return count === 0
  }

  /** Removes one row's tuple; true when that was its last row. */
  delete(parts: TupleParts): boolean {
    const map = parts.includes(null) ? this.#withNull : this.#counts
    const key = tupleKey(parts)
    const count = map.get(key)
    if (count === undefined) return false
    if (count > 1) {
      map.set(key, count - 1)
      return false
    }
    map.delete(key)
    return true
  }

  /**
   * PostgreSQL's `parts IN (set)` when `parts` has a NULL or the set has tuples with one: TRUE
   * never (an equal tuple has no NULL), NULL when some tuple is equal wherever both are known.
   */
  unknownMatch(parts: TupleParts): boolean {
    for (const map of [this.#counts, this.#withNull]) {
      for (const key of map.keys()) {
        const other = JSON.parse(key) as (string | null)[]
        if (parts.every((part, i) => part === null || other[i] === null || part === other[i])) return true
      }
    }
    return false
  }
}

export function tupleKey(parts: TupleParts): TupleKey {
  return JSON.stringify(parts)
}
