/**
 * One subquery's result, kept from the inner table's changes: which inner rows it selects (by
 * row key, so a delete, which carries the old row, takes out exactly what its insert put in)
 * and the multiset of their tuples the outer `IN` evaluates against. A transaction's changes
 * are applied in order; `TupleChanges` records which tuples entered or left the result over the
 * whole transaction, which is what moves rows in and out.
 */
import type { Change } from '../../replication/transaction.js'
import { toRow } from '../change-encoder.js'
import { relationPrefix, rowKey } from '../row-key.js'
import type { SubqueryNode } from '../where/compile-where.js'
import { findEqualityIndex, type EqualityIndex } from '../where/equality-index.js'
import { buildEvaluator, type Row } from '../where/evaluate.js'
import { valueKey } from '../where/subquery-key.js'
import type { Typed } from '../where/typed-ast.js'
import { tupleKey, ValueSet, type TupleKey, type TupleParts } from '../where/value-set.js'
import type { ScalarValue } from '../where/values.js'

/** Tuples a transaction touched, with whether each was in the result before it. */
export type TupleChanges = Map<TupleKey, { readonly parts: TupleParts; readonly before: boolean }>

export interface Moves {
  readonly entered: readonly TupleParts[]
  readonly left: readonly TupleParts[]
}

export class Dependency {
  readonly node: SubqueryNode
  readonly set = new ValueSet()
  /** The inner where's `col = const` part, so a change to the inner table finds it by hash. */
  readonly equalityIndex: EqualityIndex | undefined
  /** The subqueries of its own where (not those nested deeper): a change in their results re-decides its rows. */
  readonly nested: readonly SubqueryNode[]
  /** Each selected row's tuple, and with nested subqueries the row too, to judge it again when their results change. */
  readonly #rows = new Map<string, { readonly parts: TupleParts; readonly row: Row | undefined }>()
  readonly #keyPrefix: string
  readonly #matches: (row: Row) => boolean
  readonly #parts: readonly ((row: Row) => string | null)[]

  constructor(node: SubqueryNode) {
    this.node = node
    node.values.set = this.set
    this.equalityIndex = node.where && findEqualityIndex(node.where)
    this.nested = node.where ? nestedIn(node.where) : []
    this.#keyPrefix = relationPrefix(node.table.table)
    const where = node.where && buildEvaluator(node.where)
    this.#matches = (row) => {
      if (!where) return true
      try {
        return where(row) === true
      } catch {
        return false
      }
    }
    this.#parts = node.columns.map(partOf)
  }

  get table(): { readonly schema: string; readonly name: string } {
    return this.node.table.table
  }

  /**
   * A row the snapshot's query selected (its key and selected columns, as text): PostgreSQL
   * evaluated the subquery's where.
   */
  load(row: Row): void {
    const parts = this.#parts.map((part) => part(row))
    this.#rows.set(this.#rowKey(row), this.#held(parts, row))
    this.set.add(parts)
  }

  /**
   * Its nested subqueries' results changed: rows it selected that no longer match leave it, and
   * `rows` (those the transaction wrote, and those read where a changed tuple could make them
   * match) that now match and are not selected yet enter it, each noted in `changes`
   * (docs/ARCHITECTURE.md I25).
   */
  rejudge(rows: readonly Row[], changes: TupleChanges): void {
    for (const [key, { parts, row }] of this.#rows) {
      if (row && this.#matches(row)) continue
      this.#note(parts, changes)
      this.#rows.delete(key)
      this.set.delete(parts)
    }
    for (const row of rows) if (!this.#rows.has(this.#rowKey(row))) this.#add(row, changes)
  }

  /**
   * Applies one change of the inner table, noting the tuples it moves in `changes`, and in
   * `written` the row each key is left as (undefined once deleted): with nested subqueries a row
   * is judged again against their results at the transaction's end, not as they were mid-way.
   */
  apply(change: Change, changes: TupleChanges, written?: Map<string, Row | undefined>): void {
    if (change.kind === 'truncate') return
    const { schema, name } = this.table
    if (change.relation.schema !== schema || change.relation.name !== name) return
    const names = change.relation.columns.map((c) => c.name)
    if (change.kind !== 'insert') {
      // Without an old row (not REPLICA IDENTITY FULL) the key is unchanged: the new row names it.
      const old = change.kind === 'delete' ? change.old : (change.old ?? change.record)
      const row = toRow(names, old, undefined)
      this.#remove(row, changes)
      written?.set(this.#rowKey(row), undefined)
    }
    if (change.kind !== 'delete') {
      const row = toRow(names, change.record, change.kind === 'update' ? change.old : undefined)
      this.#add(row, changes)
      written?.set(this.#rowKey(row), row)
    }
  }

  /** The tuple an inner change's new row would put in the result, if it is of this table and selected. */
  tupleOf(change: Change): TupleParts | undefined {
    if (change.kind === 'truncate' || change.kind === 'delete') return undefined
    const { schema, name } = this.table
    if (change.relation.schema !== schema || change.relation.name !== name) return undefined
    const row = toRow(
      change.relation.columns.map((c) => c.name),
      change.record,
      change.kind === 'update' ? change.old : undefined,
    )
    return this.#matches(row) ? this.#parts.map((part) => part(row)) : undefined
  }

  /** What entered and left the result over the changes recorded in `changes`. */
  moves(changes: TupleChanges): Moves {
    const entered: TupleParts[] = []
    const left: TupleParts[] = []
    for (const { parts, before } of changes.values()) {
      const now = this.set.contains(parts)
      if (now && !before) entered.push(parts)
      if (before && !now) left.push(parts)
    }
    return { entered, left }
  }

  #add(row: Row, changes: TupleChanges | undefined): void {
    if (!this.#matches(row)) return
    const parts = this.#parts.map((part) => part(row))
    if (changes) this.#note(parts, changes)
    const key = this.#rowKey(row)
    const previous = this.#rows.get(key)
    if (previous) this.set.delete(previous.parts)
    this.#rows.set(key, this.#held(parts, row))
    this.set.add(parts)
  }

  #remove(row: Row, changes: TupleChanges): void {
    const key = this.#rowKey(row)
    const parts = this.#rows.get(key)?.parts
    if (!parts) return
    this.#note(parts, changes)
    this.#rows.delete(key)
    this.set.delete(parts)
  }

  #note(parts: TupleParts, changes: TupleChanges): void {
    const key = tupleKey(parts)
    if (!changes.has(key)) changes.set(key, { parts, before: this.set.contains(parts) })
  }

  #held(parts: TupleParts, row: Row): { readonly parts: TupleParts; readonly row: Row | undefined } {
    return { parts, row: this.nested.length > 0 ? row : undefined }
  }

  #rowKey(row: Row): string {
    return rowKey(this.#keyPrefix, this.node.table.primaryKey.map((column) => row[column] ?? null))
  }
}

/** The subqueries a where names outside other subqueries. */
function nestedIn(where: Typed): SubqueryNode[] {
  if (where.kind === 'subquery') return [where]
  if (where.kind === 'and' || where.kind === 'or') return where.args.flatMap(nestedIn)
  if (where.kind === 'not') return nestedIn(where.arg)
  return []
}

function partOf(column: Typed): (row: Row) => string | null {
  const evaluate = buildEvaluator(column) as (row: Row) => unknown
  return (row) => {
    try {
      const value = evaluate(row)
      return value === null ? null : valueKey(column.type, value as ScalarValue)
    } catch {
      return null
    }
  }
}
