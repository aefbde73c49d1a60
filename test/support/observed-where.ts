/** What a compiled `where` is, for comparing two compiles: its data, and its functions applied to `rows`. */
import type { CompiledWhere, Row } from '../../src/shapes/where/compile-where.js'

export function observedWhere(where: CompiledWhere, rows: readonly Row[]) {
  const { evaluate, matches, typed: _positions, equalityIndex, ...rest } = where
  return {
    ...rest,
    equalityIndex: equalityIndex && { column: equalityIndex.column, values: equalityIndex.values, keys: rows.map((row) => equalityIndex.keyOf(row[equalityIndex.column] ?? '')) },
    answers: rows.map((row) => {
      try {
        return evaluate(row)
      } catch (error) {
        return (error as Error).name
      }
    }),
    matches: rows.map(matches),
  }
}
