/**
 * Parses and validates the query of a shape request (docs/PROTOCOL.md: Shapes). Everything
 * a client sends is checked here, before any use; the errors name the parameter.
 */
import { InvalidRequestError, TableError } from '../errors.js'
import { parseTableName } from '../pg/table-name.js'
import { OFFSET_NOW, PARAMS } from '../protocol/constants.js'
import { BEFORE_ALL, compareOffsets, parseOffset, type Offset } from '../protocol/offset.js'
import { LOG_MODES, REPLICA_MODES, type LogMode, type ReplicaMode, type ShapeDefinition } from '../shapes/shape-definition.js'
import type { TableName } from '../pg/table-name.js'
import { parseColumnList } from '../shapes/column-list.js'
import { FOREIGN_HANDLE, parseShapeHandle, type ShapeHandle } from '../shapes/shape-handle.js'
import type { ParamReader } from '../shapes/where/compile-where.js'
import { canonicalWhere } from '../shapes/where/canonical.js'
import { WhereFamilies } from '../shapes/where/where-families.js'
import type { WhereNode } from '../shapes/where/where-ast.js'
import { parameterErrorsOf } from './error-response.js'

export interface ShapeRequest {
  readonly definition: ShapeDefinition
  /** `now` asks for no history: an up-to-date at the head. */
  readonly offset: Offset | typeof OFFSET_NOW
  readonly handle: ShapeHandle | typeof FOREIGN_HANDLE | undefined
  readonly live: boolean
  /** Live over Server-Sent Events (`live_sse` or `experimental_live_sse`); implies `live`. */
  readonly liveSse: boolean
  readonly cursor: string | undefined
  /** `where` as the client wrote it, with its params: errors found against the table point into it. */
  readonly whereSource?: WhereSource
  /** `queryable_columns`: the only columns a subset may filter and order on. */
  readonly queryableColumns: ReadonlySet<string> | undefined
}

/**
 * A request's `where`: the client's text and params, and their parse, which a new shape is
 * compiled from (parsing is most of a where's cost; the request parses it once, for its identity).
 */
export interface WhereSource {
  readonly text: string
  readonly params: ParamReader
  /** Its positions point into `text`. */
  readonly parsed: WhereNode
}

type Query = (name: string) => string | undefined

/** Requests' wheres parsed once per family of texts that differ only in their constants (`where-families.ts`). */
const families = new WhereFamilies()

export function parseShapeRequest(query: Query): ShapeRequest {
  const errors: Record<string, string[]> = {}
  const fail = (param: string, reason: string) => (errors[param] ??= []).push(reason)

  const tableText = query(PARAMS.table)
  let table: TableName | undefined
  if (tableText === undefined || tableText === '') fail(PARAMS.table, 'is required')
  else {
    table = collect(errors, () => parseTableName(tableText))
  }

  const offsetText = query(PARAMS.offset)
  let offset: Offset | typeof OFFSET_NOW | undefined
  if (offsetText === undefined || offsetText === '') fail(PARAMS.offset, 'is required')
  else if (offsetText === OFFSET_NOW) offset = OFFSET_NOW
  else {
    offset = parseOffset(offsetText)
    if (!offset) fail(PARAMS.offset, 'must be -1, now, or <tx>_<op> (two decimal numbers, op may be inf)')
  }
  const fromStart = offset === OFFSET_NOW || (offset !== undefined && compareOffsets(offset, BEFORE_ALL) === 0)

  const handleText = query(PARAMS.handle)
  let handle: ShapeHandle | typeof FOREIGN_HANDLE | undefined
  if (!fromStart) {
    if (handleText === undefined || handleText === '') {
      if (offset !== undefined) fail(PARAMS.handle, 'is required unless offset is -1 or now')
    } else {
      handle = parseShapeHandle(handleText) ?? FOREIGN_HANDLE
    }
  }

  const liveText = query(PARAMS.live)
  const live = liveText !== undefined && liveText !== 'false'
  const liveSse = live && [PARAMS.liveSse, PARAMS.experimentalLiveSse].some((name) => query(name) === 'true')
  // [sluice] In SSE mode `-1` and `now` may be live: snapshot (or nothing) then changes, one connection.
  if (live && fromStart && !liveSse) fail(PARAMS.live, 'cannot be used with offset -1 or now')

  const replica = oneOf<ReplicaMode>(query(PARAMS.replica), REPLICA_MODES, REPLICA_MODES.default, (r) => fail(PARAMS.replica, r))
  const log = oneOf<LogMode>(query(PARAMS.log), LOG_MODES, LOG_MODES.full, (r) => fail(PARAMS.log, r))

  // Both are checked here, before anything touches the database; binding them to the
  // table's columns (types, existence, the primary key) happens when the shape is created.
  const whereText = query(PARAMS.where)
  const params: ParamReader = (n) => query(`${PARAMS.params}[${n}]`)
  const parsed = whereText === undefined ? undefined : collect(errors, () => families.parse(whereText, params))
  const where = parsed && canonicalWhere(parsed)
  const columnsText = query(PARAMS.columns)
  let columns = columnsText === undefined ? undefined : collect(errors, () => parseColumnList(columnsText))
  const queryableText = query(PARAMS.queryableColumns)
  const queryable = queryableText === undefined ? undefined : collect(errors, () => parseColumnList(queryableText, PARAMS.queryableColumns))
  if (queryable) {
    // As Electric: the allow-list is also the projection when none is asked for, and bounds one that is.
    const outside = columns?.filter((name) => !queryable.includes(name)) ?? []
    if (outside.length > 0) (errors[PARAMS.columns] ??= []).push(`must be among queryable_columns; not: ${outside.map((n) => JSON.stringify(n)).join(', ')}`)
    columns ??= queryable
  }

  if (Object.keys(errors).length > 0 || !table || offset === undefined) throw new InvalidRequestError(errors)
  return {
    definition: { table, replica, log, ...(where !== undefined ? { where } : {}), ...(columns !== undefined ? { columns } : {}) },
    offset,
    handle,
    live,
    liveSse,
    cursor: query(PARAMS.cursor),
    ...(whereText !== undefined && parsed ? { whereSource: { text: whereText, params, parsed } } : {}),
    queryableColumns: queryable ? new Set(queryable) : undefined,
  }
}

/** Runs a parser that throws a 400 error (`InvalidRequestError`, `TableError`), collecting its reasons with the others. */
function collect<T>(errors: Record<string, string[]>, parse: () => T): T | undefined {
  try {
    return parse()
  } catch (error) {
    if (!(error instanceof InvalidRequestError || error instanceof TableError)) throw error
    for (const [param, reasons] of Object.entries(parameterErrorsOf(error))) (errors[param] ??= []).push(...reasons)
    return undefined
  }
}

function oneOf<T extends string>(
  value: string | undefined,
  allowed: Readonly<Record<string, T>>,
  fallback: T,
  fail: (reason: string) => void,
): T {
  if (value === undefined) return fallback
  const values = Object.values(allowed)
  if ((values as string[]).includes(value)) return value as T
  fail(`must be one of ${values.join(', ')}`)
  return fallback
}
