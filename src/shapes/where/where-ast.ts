/**
 * A `where` clause as Sluice accepts it: the subset of PostgreSQL's expression grammar we can
 * also evaluate in TypeScript, before types are known. Produced from PostgreSQL's own parse
 * tree (`parse-where.ts`), so it is exactly what PostgreSQL would see; `$n` parameters are
 * already replaced by the string literals they stand for. `at` is a 0-based character offset
 * into the clause, for error messages.
 */
import type { TableName } from '../../pg/table-name.js'

export type CompareOp = '=' | '<>' | '<' | '<=' | '>' | '>='
export type ArithmeticOp = '+' | '-' | '*' | '/' | '%'
export type ArrayOp = '@>' | '<@' | '&&'
export type BinaryOp = CompareOp | ArithmeticOp | ArrayOp | '||'
export type FunctionName = 'lower' | 'upper' | 'length' | 'abs' | 'coalesce'
export type LiteralKind = 'integer' | 'decimal' | 'string' | 'boolean' | 'null'

export type WhereNode = { readonly at: number } & (
  | { readonly kind: 'column'; readonly name: string }
  | { readonly kind: 'literal'; readonly literal: LiteralKind; readonly text: string }
  | { readonly kind: 'binary'; readonly op: BinaryOp; readonly left: WhereNode; readonly right: WhereNode }
  | { readonly kind: 'negate'; readonly arg: WhereNode }
  | { readonly kind: 'and' | 'or'; readonly args: readonly WhereNode[] }
  | { readonly kind: 'not'; readonly arg: WhereNode }
  | { readonly kind: 'in'; readonly arg: WhereNode; readonly list: readonly WhereNode[]; readonly negated: boolean }
  | {
      readonly kind: 'between'
      readonly arg: WhereNode
      readonly low: WhereNode
      readonly high: WhereNode
      readonly negated: boolean
      readonly symmetric: boolean
    }
  | { readonly kind: 'isNull'; readonly arg: WhereNode; readonly negated: boolean }
  | { readonly kind: 'isBool'; readonly arg: WhereNode; readonly value: 'true' | 'false' | 'unknown'; readonly negated: boolean }
  | { readonly kind: 'distinct'; readonly left: WhereNode; readonly right: WhereNode; readonly negated: boolean }
  | { readonly kind: 'like'; readonly arg: WhereNode; readonly pattern: WhereNode; readonly negated: boolean; readonly caseInsensitive: boolean }
  | { readonly kind: 'cast'; readonly arg: WhereNode; readonly typeName: string; readonly array: boolean }
  | { readonly kind: 'quantified'; readonly op: CompareOp; readonly left: WhereNode; readonly right: WhereNode; readonly all: boolean }
  | { readonly kind: 'array'; readonly elements: readonly WhereNode[] }
  | { readonly kind: 'call'; readonly name: FunctionName; readonly args: readonly WhereNode[] }
  | {
      /** `args IN (SELECT columns FROM table WHERE where)`: one arg, or a row value of several. */
      readonly kind: 'subquery'
      readonly args: readonly WhereNode[]
      readonly table: TableName
      readonly tableAt: number
      readonly columns: readonly WhereNode[]
      readonly where: WhereNode | undefined
    }
)
