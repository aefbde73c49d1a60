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

/** What the evaluator asks of a subquery's tuples. */
export interface TupleSet {
  readonly size: number
  readonly hasNullTuples: boolean
  has(key: TupleKey): boolean
  unknownMatch(parts: TupleParts): boolean
  contains(parts: TupleParts): boolean
  tuples(): Iterable<TupleParts>
}

export class ValueSet implements TupleSet {
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

  contains(parts: TupleParts): boolean {
    return (parts.includes(null) ? this.#withNull : this.#counts).has(tupleKey(parts))
  }

  *tuples(): Iterable<TupleParts> {
    for (const map of [this.#counts, this.#withNull]) for (const key of map.keys()) yield JSON.parse(key) as TupleParts
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
    return unknownMatchIn(this.tuples(), parts)
  }
}

function unknownMatchIn(tuples: Iterable<TupleParts>, parts: TupleParts): boolean {
  for (const other of tuples) {
    if (parts.every((part, i) => part === null || other[i] === null || part === other[i])) return true
  }
  return false
}

/**
 * A set as it was, or would be, with some tuples present or absent: the tuples before the
 * transaction being encoded (for its old rows), or without those a move-in has already read.
 */
export class TupleOverlay implements TupleSet {
  readonly #base: TupleSet
  /** Tuple key → its parts and whether the overlay holds it. */
  readonly #present: ReadonlyMap<TupleKey, { readonly parts: TupleParts; readonly present: boolean }>

  constructor(base: TupleSet, present: ReadonlyMap<TupleKey, { readonly parts: TupleParts; readonly present: boolean }>) {
    this.#base = base
    this.#present = present
  }

  get size(): number {
    let size = this.#base.size
    for (const { parts, present } of this.#present.values()) size += present === this.#base.contains(parts) ? 0 : present ? 1 : -1
    return size
  }

  get hasNullTuples(): boolean {
    // Evaluated for every row a NOT IN or a missed IN judges: without NULLs underneath, only the overlay's own tuples can hold one.
    if (!this.#base.hasNullTuples) {
      for (const { parts, present } of this.#present.values()) if (present && parts.includes(null)) return true
      return false
    }
    for (const parts of this.tuples()) if (parts.includes(null)) return true
    return false
  }

  has(key: TupleKey): boolean {
    return this.#present.get(key)?.present ?? this.#base.has(key)
  }

  contains(parts: TupleParts): boolean {
    return this.#present.get(tupleKey(parts))?.present ?? this.#base.contains(parts)
  }

  *tuples(): Iterable<TupleParts> {
    for (const parts of this.#base.tuples()) if (this.#present.get(tupleKey(parts))?.present !== false) yield parts
    for (const { parts, present } of this.#present.values()) if (present && !this.#base.contains(parts)) yield parts
  }

  unknownMatch(parts: TupleParts): boolean {
    return unknownMatchIn(this.tuples(), parts)
  }
}

export function tupleKey(parts: TupleParts): TupleKey {
  return JSON.stringify(parts)
}
