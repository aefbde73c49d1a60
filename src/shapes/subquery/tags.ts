/**
 * A row's `tags` and `active_conditions` under a `WherePlan`, computed in TypeScript for
 * replicated rows and as SQL for snapshot rows; both give the same text. A subquery slot is the
 * md5 of the shape handle and the row's values there (as Electric hashes them: `v:` before a
 * value, `NULL` for none, `i:` before each part of a row value), so tags differ between shapes
 * and never show values.
 */
import { createHash } from 'node:crypto'
import { sqlLiteral } from '../../pg/sql.js'
import { buildEvaluator, type Row } from '../where/evaluate.js'
import { renderSql } from '../where/render-sql.js'
import { keySql, valueKey } from '../where/subquery-key.js'
import type { Typed } from '../where/typed-ast.js'
import type { TupleParts } from '../where/value-set.js'
import type { ScalarValue } from '../where/values.js'
import type { WherePlan } from './plan.js'

export interface RowTags {
  readonly tags: readonly string[]
  readonly active_conditions: readonly boolean[]
}

const NULL_SLOT = 'NULL'
const VALUE_PREFIX = 'v:'

/** The last slot hashed: the rows a move-in brings in, or a transaction writes, mostly share one. */
let last = { input: '', hash: '' }

/** The hash of one subquery slot: what tags carry and move patterns name. */
export function slotHash(handle: string, parts: TupleParts): string {
  const text = parts.length === 1 ? namespaced(parts[0]!) : parts.map((part, i) => `${i}:${namespaced(part)}`).join('')
  const input = handle + text
  if (input !== last.input) last = { input, hash: createHash('md5').update(input).digest('hex') }
  return last.hash
}

function namespaced(part: string | null): string {
  return part === null ? NULL_SLOT : VALUE_PREFIX + part
}

/** Builds the TypeScript side once per shape: `(row) => tags` with the current value sets. */
export function rowTagger(plan: WherePlan, handle: string): (row: Row) => RowTags {
  const holds = plan.positions.map((position) => {
    const evaluate = buildEvaluator(position.node)
    return (row: Row) => {
      try {
        return evaluate(row) === !position.negated
      } catch {
        return false
      }
    }
  })
  const slots = plan.positions.map((position) => {
    if (position.kind === 'row') return () => '1'
    const parts = position.node.args.map(partOf)
    return (row: Row) => slotHash(handle, parts.map((part) => part(row)))
  })
  return (row) => {
    const values = slots.map((slot) => slot(row))
    return {
      tags: plan.disjuncts.map((positions) => values.map((value, i) => (positions.includes(i) ? value : '')).join('/')),
      active_conditions: holds.map((hold) => hold(row)),
    }
  }
}

function partOf(arg: Typed): (row: Row) => string | null {
  const evaluate = buildEvaluator(arg) as (row: Row) => unknown
  return (row) => {
    try {
      const value = evaluate(row)
      return value === null ? null : valueKey(arg.type, value as ScalarValue)
    } catch {
      return null
    }
  }
}

/** SQL for the same two headers of the current row, each a JSON array as text. */
export function rowTagsSql(plan: WherePlan, handle: string): { tags: string; activeConditions: string } {
  const slots = plan.positions.map((position) => {
    if (position.kind === 'row') return `'1'`
    const args = position.node.args
    const part = (arg: Typed) => {
      const key = keySql(arg.type, renderSql(arg))
      return `(CASE WHEN ${key} IS NULL THEN ${sqlLiteral(NULL_SLOT)} ELSE ${sqlLiteral(VALUE_PREFIX)} || ${key} END)`
    }
    const text = args.length === 1 ? part(args[0]!) : args.map((arg, i) => `${sqlLiteral(`${i}:`)} || ${part(arg)}`).join(' || ')
    return `md5(${sqlLiteral(handle)} || ${text})`
  })
  const tags = plan.disjuncts.map((positions) => slots.map((slot, i) => (positions.includes(i) ? slot : `''`)).join(` || '/' || `))
  const holds = plan.positions.map((position) => {
    const sql = renderSql(position.node)
    return `COALESCE(${position.negated ? `(NOT ${sql})` : sql}, false)`
  })
  return {
    tags: `json_build_array(${tags.join(', ')})::text`,
    activeConditions: `json_build_array(${holds.join(', ')})::text`,
  }
}
