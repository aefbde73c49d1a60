/**
 * Reads a subset request (PROTOCOL: Subset snapshots) from a GET query (`subset__*`) or a POST
 * body (`{where, params, limit, offset, order_by}`, also nested under `subset`), and checks its
 * form: numbers are integers in range, params are strings (numbers and booleans are spelled
 * out), `limit`/`offset` come with `order_by`. `*_expr` keys are ignored, as Electric does.
 * Binding to the table happens later (`shapes/subset/compile-subset.ts`). Errors name the
 * `subset__*` parameter, whichever way the request came.
 */
import { InvalidRequestError } from '../errors.js'
import { PARAMS, SUBSET_BODY } from '../protocol/constants.js'
import type { SubsetParams } from '../shapes/subset/compile-subset.js'
import { WHERE_LIMITS } from '../shapes/where/compile-where.js'

/** A POST body larger than this is refused: it is bigger than any clause and params within the limits. */
export const MAX_SUBSET_BODY_BYTES = 2 * 1024 * 1024

const SUBSET_QUERY = [PARAMS.subsetWhere, PARAMS.subsetParams, PARAMS.subsetLimit, PARAMS.subsetOffset, PARAMS.subsetOrderBy]
const INDEXED_PARAM = /^subset__params\[(\d+)\]$/

/** The subset of a GET, or undefined when it asks for none. */
export function subsetFromQuery(search: URLSearchParams): SubsetParams | undefined {
  const indexed = new Map<string, string>()
  for (const [name, value] of search) {
    const match = INDEXED_PARAM.exec(name)
    if (match) indexed.set(String(Number(match[1])), value)
  }
  if (indexed.size === 0 && !SUBSET_QUERY.some((name) => search.has(name))) return undefined
  const errors: Record<string, string[]> = {}
  const paramsText = search.get(PARAMS.subsetParams)
  let params = indexed
  if (paramsText !== null) {
    let parsed: unknown
    try {
      parsed = JSON.parse(paramsText)
    } catch {
      (errors[PARAMS.subsetParams] ??= []).push('must be a JSON object like {"1":"value"}')
    }
    if (parsed !== undefined) params = new Map([...indexed, ...paramMap(parsed, errors)])
  }
  return subset(
    {
      where: search.get(PARAMS.subsetWhere) ?? undefined,
      limit: search.get(PARAMS.subsetLimit) ?? undefined,
      offset: search.get(PARAMS.subsetOffset) ?? undefined,
      orderBy: search.get(PARAMS.subsetOrderBy) ?? undefined,
    },
    params,
    errors,
  )
}

/** The subset of a POST body (already parsed JSON). */
export function subsetFromBody(body: unknown): SubsetParams {
  if (!isObject(body)) throw InvalidRequestError.of(SUBSET_BODY.nested, 'the request body must be a JSON object')
  const nested = body[SUBSET_BODY.nested]
  const fields = isObject(nested) ? nested : body
  const errors: Record<string, string[]> = {}
  const params = fields[SUBSET_BODY.params] === undefined || fields[SUBSET_BODY.params] === null ? new Map<string, string>() : paramMap(fields[SUBSET_BODY.params], errors)
  const text = (key: string, param: string): string | undefined => {
    const value = fields[key]
    if (value === undefined || value === null) return undefined
    if (typeof value === 'string') return value
    if (typeof value === 'number' && (key === SUBSET_BODY.limit || key === SUBSET_BODY.offset)) return String(value)
    ;(errors[param] ??= []).push('must be a string')
    return undefined
  }
  return subset(
    {
      where: text(SUBSET_BODY.where, PARAMS.subsetWhere),
      limit: text(SUBSET_BODY.limit, PARAMS.subsetLimit),
      offset: text(SUBSET_BODY.offset, PARAMS.subsetOffset),
      orderBy: text(SUBSET_BODY.orderBy, PARAMS.subsetOrderBy),
    },
    params,
    errors,
  )
}

interface RawSubset {
  readonly where: string | undefined
  readonly limit: string | undefined
  readonly offset: string | undefined
  readonly orderBy: string | undefined
}

function subset(raw: RawSubset, params: ReadonlyMap<string, string>, errors: Record<string, string[]>): SubsetParams {
  const fail = (param: string, reason: string) => (errors[param] ??= []).push(reason)
  const limit = integer(raw.limit, 1, (reason) => fail(PARAMS.subsetLimit, reason))
  const offset = integer(raw.offset, 0, (reason) => fail(PARAMS.subsetOffset, reason))
  if ((raw.limit !== undefined || raw.offset !== undefined) && raw.orderBy === undefined) {
    fail(PARAMS.subsetOrderBy, 'is required when limit or offset is present')
  }
  if (params.size > WHERE_LIMITS.maxParams) fail(PARAMS.subsetParams, `has more than ${WHERE_LIMITS.maxParams} parameters`)
  if (Object.keys(errors).length > 0) throw new InvalidRequestError(errors)
  return {
    ...(raw.where !== undefined ? { where: raw.where } : {}),
    params: (n) => params.get(String(n)),
    ...(limit !== undefined ? { limit } : {}),
    ...(offset !== undefined ? { offset } : {}),
    ...(raw.orderBy !== undefined ? { orderBy: raw.orderBy } : {}),
  }
}

function integer(text: string | undefined, min: number, fail: (reason: string) => void): number | undefined {
  if (text === undefined) return undefined
  const value = /^\d{1,15}$/.test(text) ? Number(text) : NaN
  if (!Number.isSafeInteger(value) || value < min) {
    fail(`must be an integer of at least ${min}`)
    return undefined
  }
  return value
}

/** `{"1": "a", "2": 5}` (or `["a", 5]`) as parameter number → text. */
function paramMap(value: unknown, errors: Record<string, string[]>): Map<string, string> {
  const map = new Map<string, string>()
  const entries = Array.isArray(value) ? value.map((v, i) => [String(i + 1), v] as const) : isObject(value) ? Object.entries(value) : undefined
  if (!entries) {
    (errors[PARAMS.subsetParams] ??= []).push('must be a JSON object like {"1":"value"}')
    return map
  }
  for (const [key, item] of entries) {
    if (!/^[1-9]\d{0,2}$/.test(key)) {
      (errors[PARAMS.subsetParams] ??= []).push(`has key ${JSON.stringify(key)}: keys are parameter numbers 1, 2, ...`)
    } else if (typeof item === 'string') map.set(key, item)
    else if (typeof item === 'number' || typeof item === 'boolean') map.set(key, String(item))
    else (errors[`${PARAMS.subsetParams}[${key}]`] ??= []).push('must be a string, a number or a boolean')
  }
  return map
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}
