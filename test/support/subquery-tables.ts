/** Tasks and memberships as the catalog and pgoutput describe them, for subquery tests that need no database. */
import type { ColumnInfo, TableInfo } from '../../src/pg/introspect.js'
import type { ActiveShape } from '../../src/shapes/active-shape.js'
import { ShapeSubqueries } from '../../src/shapes/subquery/shape-subqueries.js'
import { compileWhere, type SubqueryTables } from '../../src/shapes/where/compile-where.js'
import { relationOf, tableInfo } from './table-info.js'

const column = (name: string, typeName: string, typeOid: number, pk = false): ColumnInfo => ({
  name,
  typeOid,
  typeName,
  dims: 0,
  notNull: true,
  pkIndex: pk ? 0 : undefined,
})

const table = (name: string, columns: ColumnInfo[]): TableInfo => tableInfo(name, columns, { oid: name.length })

export const TASKS = table('tasks', [column('id', 'int4', 23, true), column('project_id', 'int4', 23), column('done', 'bool', 16)])
export const MEMBERSHIPS = table('memberships', [column('id', 'int4', 23, true), column('project_id', 'int4', 23), column('user_id', 'text', 25)])
export const TABLES: SubqueryTables = new Map([
  ['"public"."memberships"', MEMBERSHIPS],
  ['"public"."tasks"', TASKS],
])

export const RELATIONS = { tasks: relationOf(TASKS), memberships: relationOf(MEMBERSHIPS) }

/** A live shape of tasks (handle `h1`) with `where`, as far as its subqueries' commits read it; its results start empty. */
export function tasksShapeWithSubqueries(where: string): { readonly shape: ActiveShape; readonly subqueries: ShapeSubqueries } {
  const compiled = compileWhere(where, () => undefined, TASKS, TABLES)
  const subqueries = new ShapeSubqueries(compiled, TASKS, 'h1', undefined as never)
  const shape = {
    stored: { id: 1, handle: 'h1', definition: { table: TASKS.table, replica: 'default', log: 'full' } },
    table: TASKS,
    where: compiled,
    subqueries,
    dropped: false,
  } as unknown as ActiveShape
  return { shape, subqueries }
}
