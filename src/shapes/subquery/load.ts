/**
 * Reads each subquery's rows in the shape's snapshot transaction, so the results the router
 * starts from are those of the snapshot the shape's rows come from (docs/ARCHITECTURE.md I25).
 * Values are read as their text output, as replication sends them.
 */
import type pg from 'pg'
import { qualifiedName, sqlLiteral } from '../../pg/sql.js'
import { textOutputSql } from '../../pg/text-output-sql.js'
import { renderSql } from '../where/render-sql.js'
import type { Typed } from '../where/typed-ast.js'
import type { Dependency } from './dependency.js'

export async function loadDependencies(client: pg.PoolClient, dependencies: readonly Dependency[]): Promise<void> {
  for (const dependency of dependencies) {
    const { node } = dependency
    // With nested subqueries its rows are judged again as their results change, by every column its where may read.
    const wanted = new Set(dependency.nested.length > 0 ? node.table.columns.map((column) => column.name) : [...node.table.primaryKey, ...node.columns.flatMap(columnsOf)])
    const fields = node.table.columns.filter((column) => wanted.has(column.name)).map((column) => `${sqlLiteral(column.name)}, ${textOutputSql(column)}`)
    const where = node.where ? ` WHERE ${renderSql(node.where)}` : ''
    const { rows } = await client.query<{ r: string }>(`SELECT json_build_object(${fields.join(', ')})::text AS r FROM ${qualifiedName(node.table.table)}${where}`)
    for (const row of rows) dependency.load(JSON.parse(row.r) as Record<string, string | null>)
  }
}

/** The columns an inner select-list item reads (a column, converted to the compared type). */
function columnsOf(node: Typed): string[] {
  if (node.kind === 'column') return [node.name]
  if (node.kind === 'convert' || node.kind === 'cast') return columnsOf(node.arg)
  return []
}
