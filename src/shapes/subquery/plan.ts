/**
 * The where of a shape with subqueries as Electric's clients read it: in disjunctive normal form
 * over *positions*, each a top-level subquery (with its polarity: under NOT or not) or another
 * condition of the outer row. Every row carries one tag per disjunct (its positions' slots joined
 * by `/`: a hash of the row's values for a subquery, `1` for another condition, empty for a
 * position not in that disjunct) and `active_conditions`, whether each position holds for it.
 * A move-out names a subquery's position and value hash; a client sets that position false for
 * the rows tagged with it and keeps those some disjunct still holds for (docs/PROTOCOL.md:
 * Subqueries). A position holds when its condition is TRUE, so the DNF is exact in three-valued
 * logic: NOT is pushed down to the positions, and a disjunct is TRUE only when all its positions are.
 */
import { InvalidRequestError } from '../../errors.js'
import { PARAMS } from '../../protocol/constants.js'
import type { SubqueryNode } from '../where/compile-where.js'
import type { Typed } from '../where/typed-ast.js'

/** Disjuncts past this make tags too wide to be worth it: the clause is refused. */
export const MAX_DISJUNCTS = 16

export type Position =
  | { readonly kind: 'subquery'; readonly node: SubqueryNode; readonly negated: boolean }
  | { readonly kind: 'row'; readonly node: Typed; readonly negated: boolean }

export interface WherePlan {
  readonly positions: readonly Position[]
  /** Each disjunct: the positions that must all hold. */
  readonly disjuncts: readonly (readonly number[])[]
}

type Dnf = number[][]

export function planWhere(where: Typed): WherePlan {
  const positions: Position[] = []
  const expand = (node: Typed, negated: boolean): Dnf => {
    if (node.kind === 'not') return expand(node.arg, !negated)
    if ((node.kind === 'and' && !negated) || (node.kind === 'or' && negated)) {
      let result: Dnf = [[]]
      for (const arg of node.args) {
        const next = expand(arg, negated)
        result = result.flatMap((left) => next.map((right) => [...left, ...right]))
        if (result.length > MAX_DISJUNCTS) throw tooWide()
      }
      return result
    }
    if (node.kind === 'and' || node.kind === 'or') {
      const result = node.args.flatMap((arg) => expand(arg, negated))
      if (result.length > MAX_DISJUNCTS) throw tooWide()
      return result
    }
    positions.push(node.kind === 'subquery' ? { kind: 'subquery', node, negated } : { kind: 'row', node, negated })
    return [[positions.length - 1]]
  }
  const disjuncts = expand(where, false)
  return { positions, disjuncts }
}

function tooWide(): InvalidRequestError {
  return InvalidRequestError.of(PARAMS.where, `with subqueries, a where must expand to at most ${MAX_DISJUNCTS} alternatives (ORs of ANDs)`)
}
