/**
 * A subset request bound to its shape's table: the `where` through the shape `where` compiler
 * (same grammar, limits and 400s), `order_by` through `order-by.ts`, both limited to
 * `queryable_columns` when the proxy set them. Errors name the `subset__*` parameter.
 */
import { InvalidRequestError } from '../../errors.js'
import type { TableInfo } from '../../pg/introspect.js'
import { PARAMS } from '../../protocol/constants.js'
import { compileWhere, type ParamReader } from '../where/compile-where.js'
import { orderBySql, parseOrderBy } from './order-by.js'

/** What the client asked for, checked for form but not yet against the table. */
export interface SubsetParams {
  readonly where?: string
  readonly params: ParamReader
  readonly limit?: number
  readonly offset?: number
  readonly orderBy?: string
}

export interface CompiledSubset {
  readonly whereSql?: string
  readonly orderBySql?: string
  readonly limit?: number
  readonly offset?: number
}

export function compileSubset(subset: SubsetParams, table: TableInfo, queryable: ReadonlySet<string> | undefined): CompiledSubset {
  const errors: Record<string, string[]> = {}
  const collect = <T>(compile: () => T): T | undefined => {
    try {
      return compile()
    } catch (error) {
      if (!(error instanceof InvalidRequestError)) throw error
      for (const [param, reasons] of Object.entries(error.errors)) (errors[subsetParamName(param)] ??= []).push(...reasons)
      return undefined
    }
  }
  const visible = queryable ? { ...table, columns: table.columns.filter((c) => queryable.has(c.name)) } : table
  const where = subset.where === undefined ? undefined : collect(() => compileWhere(subset.where!, subset.params, visible))
  const fail = (reason: string) => InvalidRequestError.of(PARAMS.subsetOrderBy, reason)
  const order = subset.orderBy === undefined ? undefined : collect(() => orderBySql(parseOrderBy(subset.orderBy!, fail), table, queryable, fail))
  if (Object.keys(errors).length > 0) throw new InvalidRequestError(errors)
  return {
    ...(where ? { whereSql: where.sql } : {}),
    ...(order !== undefined ? { orderBySql: order } : {}),
    ...(subset.limit !== undefined ? { limit: subset.limit } : {}),
    ...(subset.offset !== undefined ? { offset: subset.offset } : {}),
  }
}

/** The where compiler names `where` and `params[n]`; here they are the subset's. */
function subsetParamName(param: string): string {
  if (param === PARAMS.where) return PARAMS.subsetWhere
  if (param.startsWith(`${PARAMS.params}[`)) return PARAMS.subsetParams + param.slice(PARAMS.params.length)
  return param
}
