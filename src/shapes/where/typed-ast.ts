/**
 * A `where` clause with every node's type resolved against the table, literals parsed into
 * values of their resolved type, and PostgreSQL's implicit conversions made explicit
 * (`convert`). Both the SQL for snapshots and the TypeScript evaluator are built from it.
 */
import type { ArithmeticOp, ArrayOp, CompareOp, FunctionName } from './where-ast.js'
import type { TableInfo } from '../../pg/introspect.js'
import type { TupleSet } from './value-set.js'
import type { Value } from './values.js'
import type { WhereType } from './where-types.js'

export type Typed = { readonly type: WhereType; readonly at: number } & (
  | { readonly kind: 'column'; readonly name: string }
  | { readonly kind: 'const'; readonly value: Value | null }
  /** An implicit conversion PostgreSQL applies by itself: not written in the SQL. */
  | { readonly kind: 'convert'; readonly arg: Typed }
  | { readonly kind: 'cast'; readonly arg: Typed }
  | { readonly kind: 'compare'; readonly op: CompareOp; readonly left: Typed; readonly right: Typed }
  | { readonly kind: 'arith'; readonly op: ArithmeticOp; readonly left: Typed; readonly right: Typed }
  | { readonly kind: 'negate'; readonly arg: Typed }
  | { readonly kind: 'concat'; readonly left: Typed; readonly right: Typed }
  | { readonly kind: 'and' | 'or'; readonly args: readonly Typed[] }
  | { readonly kind: 'not'; readonly arg: Typed }
    /** `arg` and `list` as written (for SQL); `comparisons` the `arg = item` each item means. */
  | { readonly kind: 'in'; readonly arg: Typed; readonly list: readonly Typed[]; readonly comparisons: readonly Typed[]; readonly negated: boolean }
  | { readonly kind: 'isNull'; readonly arg: Typed; readonly negated: boolean }
  | { readonly kind: 'isBool'; readonly arg: Typed; readonly value: 'true' | 'false' | 'unknown'; readonly negated: boolean }
  | { readonly kind: 'distinct'; readonly left: Typed; readonly right: Typed; readonly negated: boolean }
  | { readonly kind: 'like'; readonly arg: Typed; readonly pattern: Typed; readonly negated: boolean; readonly caseInsensitive: boolean }
  | { readonly kind: 'quantified'; readonly op: CompareOp; readonly left: Typed; readonly right: Typed; readonly all: boolean }
  | { readonly kind: 'arrayOp'; readonly op: ArrayOp; readonly left: Typed; readonly right: Typed }
  | { readonly kind: 'array'; readonly elements: readonly Typed[] }
  | { readonly kind: 'call'; readonly name: FunctionName; readonly args: readonly Typed[] }
  | {
      readonly kind: 'subquery'
      /** The outer values and the inner columns, each converted to the type they compare in. */
      readonly args: readonly Typed[]
      readonly table: TableInfo
      readonly columns: readonly Typed[]
      readonly where: Typed | undefined
      /** The inner rows' tuples, kept by the subquery runtime (docs/ARCHITECTURE.md I25). */
      readonly values: SubqueryValues
    }
)

/** Where the evaluator finds a subquery's tuples; the runtime swaps in the view it evaluates with. */
export interface SubqueryValues {
  set: TupleSet
}
