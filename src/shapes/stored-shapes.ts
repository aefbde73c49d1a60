/**
 * Which stored shapes are served again after a restart, and as what. A shape is kept only if its
 * table (and every table its subqueries read) is still there, still servable, bound the same way
 * (same identity, no DDL while Sluice was down), and its snapshot finished; the others are deleted
 * from storage, so their clients refetch.
 */
import type pg from 'pg'
import type { Logger } from '../log.js'
import { loadTableInfo, type TableInfo } from '../pg/introspect.js'
import { refusalOf, type ServeOptions } from '../pg/servable.js'
import { qualifiedName } from '../pg/sql.js'
import type { TableName } from '../pg/table-name.js'
import { SHAPE_STATUS, type ShapeLogStore, type SnapshotInfo } from '../storage/shape-log-store.js'
import { ActiveShape } from './active-shape.js'
import { schemaChange } from './schema-drift.js'
import type { ShapeDefinition } from './shape-definition.js'
import { bindShape, type BoundShape } from './shape-filter.js'
import { StoredWheres } from './stored-wheres.js'
import { ShapeSubqueries } from './subquery/shape-subqueries.js'
import { tablesOfWhere, type SubqueryTables } from './where/compile-where.js'
import { visibilityOf, type Visibility } from './xid-visibility.js'

export interface StoredShapesDeps {
  readonly store: ShapeLogStore
  readonly pool: pg.Pool
  readonly serve: ServeOptions
  readonly log: Logger
}

/**
 * A stored shape to serve again. `resuming`: its subqueries' results were only in memory, so it
 * waits for a snapshot that reads them again (docs/ARCHITECTURE.md I25); the others follow the log
 * from where storage left them.
 */
export interface RestoredShape {
  readonly shape: ActiveShape
  readonly resuming: boolean
}

export async function restoreStoredShapes({ store, pool, serve, log }: StoredShapesDeps): Promise<RestoredShape[]> {
  // Many shapes share a table: look each table up once.
  const tables = new Map<string, Promise<TableInfo | undefined>>()
  const tableOf = (name: TableName) => {
    const key = qualifiedName(name)
    let table = tables.get(key)
    if (!table) tables.set(key, (table = loadTableInfo(pool, name)))
    return table
  }
  const records = store.recoveredShapes()
  // Loaded before the loop, which then waits for nothing per shape (100,000 waits were a tenth of it).
  const loaded = new Map<string, TableInfo | undefined>()
  for (const stored of records) void tableOf(stored.definition.table)
  await Promise.all([...tables].map(async ([key, table]) => loaded.set(key, await table)))
  // Shapes that shared a snapshot share its visibility again.
  const visibilities = new Map<string, Visibility>()
  const visibilityOfStored = (info: SnapshotInfo) => {
    const key = `${info.xmin}:${info.xmax}:${info.xip.join(',')}:${info.lsn ?? ''}`
    let visibility = visibilities.get(key)
    if (!visibility) visibilities.set(key, (visibility = visibilityOf(info)))
    return visibility
  }
  const wheres = new StoredWheres()
  const restored: RestoredShape[] = []
  // Queued together, they commit in a few write transactions rather than one after another.
  const deletions: Promise<void>[] = []
  for (const stored of records) {
    const table = stored.status === SHAPE_STATUS.ready ? loaded.get(qualifiedName(stored.definition.table)) : undefined
    const subqueryTables = table && (hasSubquery(stored.definition) ? await subqueryTablesOf(stored.definition, tableOf, serve) : NO_TABLES)
    const bound = table && subqueryTables && !refusalOf(table, serve) ? tryBind(stored.definition, table, subqueryTables, wheres) : undefined
    // The identity may have changed while Sluice was down: the log's keys would not match new ones.
    const sameKey = !stored.key || (bound !== undefined && stored.key.join('\u0000') === bound.table.primaryKey.join('\u0000'))
    // A DDL while Sluice was down sent no Relation message (a re-created table is not even in
    // the publication): compare with the table the shape was bound to.
    const changed = table && bound && stored.table ? schemaChange({ stored, table: stored.table }, { ...table.table, oid: table.oid, columns: table.columns }) : undefined
    if (!table || !bound || !stored.snapshot || !sameKey || changed) {
      log.info({ handle: stored.handle, status: stored.status, ...(changed ? { schemaChange: changed } : {}) }, 'dropping shape that cannot be resumed')
      deletions.push(store.deleteShape(stored.id))
      continue
    }
    if (bound.where && bound.where.subqueries.length > 0) {
      restored.push({ shape: ActiveShape.waiting(stored, bound, new ShapeSubqueries(bound.where, table, stored.handle, pool)), resuming: true })
      continue
    }
    // What the check above needed stays behind: a stored record's own copy of its table (parsed
    // anew for each shape) would cost more than the rest of an idle shape.
    const { table: _checked, key: _checkedKey, ...kept } = stored
    const record = { ...kept, definition: compactDefinition(stored.definition, table, bound) }
    // After a restart, transactions past the durable LSN may still predate the snapshot:
    // filter them again rather than assume the shape was past xmax.
    restored.push({ shape: ActiveShape.resumed(record, bound, visibilityOfStored(stored.snapshot)), resuming: false })
  }
  await Promise.all(deletions)
  return restored
}

/**
 * The definition as the shape keeps it, sharing what it can with what shapes keep anyway: the
 * catalog's TableName, which every shape of the table shares (a name the request's query parser
 * sliced out of its URL keeps the whole URL alive for as long as the shape lives), and the bound
 * where's canonical text.
 */
export function compactDefinition(definition: ShapeDefinition, table: TableInfo, bound: BoundShape): ShapeDefinition {
  const sameTable = definition.table.schema === table.table.schema && definition.table.name === table.table.name
  const where = bound.where?.canonical === definition.where ? bound.where?.canonical : definition.where
  return { ...definition, ...(sameTable ? { table: table.table } : {}), ...(where !== undefined ? { where } : {}) }
}

const NO_TABLES: SubqueryTables = new Map()

/** A stored where is canonical, where a subquery is spelled `IN (SELECT …`: the others need no second parse at a restart. */
function hasSubquery(definition: ShapeDefinition): boolean {
  return definition.where !== undefined && definition.where.includes(' IN (SELECT ')
}

/** The tables a stored where's subqueries read; undefined when one can no longer be served. */
async function subqueryTablesOf(
  definition: ShapeDefinition,
  tableOf: (name: TableName) => Promise<TableInfo | undefined>,
  serve: ServeOptions,
): Promise<SubqueryTables | undefined> {
  const tables = new Map<string, TableInfo>()
  if (definition.where === undefined) return tables
  let named: TableName[]
  try {
    named = tablesOfWhere(definition.where).map(({ table }) => table)
  } catch {
    return undefined
  }
  for (const name of named) {
    const table = await tableOf(name)
    if (!table || refusalOf(table, serve)) return undefined
    tables.set(qualifiedName(name), table)
  }
  return tables
}

/** A stored shape bound to today's table; undefined when its columns or where no longer fit. */
function tryBind(definition: ShapeDefinition, table: TableInfo, tables: SubqueryTables, wheres: StoredWheres): BoundShape | undefined {
  try {
    return bindShape(definition, table, tables, definition.where === undefined ? undefined : wheres.compile(definition.where, table, tables))
  } catch {
    return undefined
  }
}
