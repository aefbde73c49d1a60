/**
 * Which relations Sluice can serve, and why not the others (docs/ARCHITECTURE.md I15, I17).
 * Every refusal is permanent (a `TableError`, answered 400: retrying cannot help) and names what
 * would make the relation servable. Decided from the catalog before anything is altered, rather than from PostgreSQL's
 * error when the table joins the publication: some relations it would accept there
 * (information_schema tables) and then never publish, and its message would say less about the fix.
 */
import { ERROR_CODES, TableError } from '../errors.js'
import { qualifiedName } from './sql.js'
import type { TableName } from './table-name.js'
import { IDENTITY_SOURCES, PERSISTENCES, type Queryable, type TableInfo } from './introspect.js'

export interface ServeOptions {
  /** SLUICE_ALLOW_KEYLESS_TABLES: serve tables without a row identity, keyed on every column. */
  readonly allowKeylessTables: boolean
}

/** Why Sluice cannot serve this table, or undefined when it can. */
export function refusalOf(info: TableInfo, options: ServeOptions): string | undefined {
  const name = qualifiedName(info.table)
  if (info.system) {
    return `${name} is a PostgreSQL system table: PostgreSQL never publishes the changes of system catalogs or information_schema, so Sluice cannot follow it`
  }
  if (info.persistence === PERSISTENCES.unlogged) {
    return `${name} is UNLOGGED: its changes are not written to the WAL, so PostgreSQL cannot replicate them. To serve it, make it logged: ALTER TABLE ${name} SET LOGGED;`
  }
  if (info.persistence === PERSISTENCES.temporary) {
    return `${name} is a temporary table: it belongs to one session and PostgreSQL does not replicate it`
  }
  if (info.partitioned) {
    return `${name} is a partitioned table: PostgreSQL publishes its changes under each partition's own name, so Sluice cannot follow the parent. Request its partitions instead`
  }
  if (info.identity.source === IDENTITY_SOURCES.allColumns && !options.allowKeylessTables) {
    if (info.identity.deferrablePrimaryKey) {
      return (
        `${name} has a DEFERRABLE primary key: inside a transaction two rows may share a key, and clients would merge them. ` +
        `Re-create it NOT DEFERRABLE; or add a unique index over NOT NULL columns that is not deferrable and run ALTER TABLE ${name} REPLICA IDENTITY USING INDEX <index>; ` +
        'or start Sluice with SLUICE_ALLOW_KEYLESS_TABLES=true to key its rows on all columns (identical rows then reach clients as one row)'
      )
    }
    return (
      `${name} has no primary key, replica identity index or unique index over NOT NULL columns, so its rows have no identity ` +
      `(clients could not tell identical rows apart). Give it one: ALTER TABLE ${name} ADD PRIMARY KEY (<columns>); ` +
      `or, with a unique index over NOT NULL columns, ALTER TABLE ${name} REPLICA IDENTITY USING INDEX <index>; ` +
      'or start Sluice with SLUICE_ALLOW_KEYLESS_TABLES=true to key its rows on all columns (identical rows then reach clients as one row)'
    )
  }
  return undefined
}

const RELKIND_REFUSALS: Readonly<Record<string, string>> = {
  v: 'is a view: PostgreSQL replicates tables, not views. Request the table it reads, with a where clause',
  m: 'is a materialized view: PostgreSQL does not replicate its REFRESH. Request the tables it is built from',
  f: 'is a foreign table: its rows live on another server and their changes never reach this database\'s WAL',
  S: 'is a sequence, not a table',
  i: 'is an index, not a table',
  I: 'is an index, not a table',
  c: 'is a composite type, not a table',
  t: 'is a TOAST table, which PostgreSQL does not publish',
}

/**
 * Why a relation that is not a regular or partitioned table cannot be served, or that it does
 * not exist, for a name `loadTableInfo` did not find.
 */
export async function notATableError(db: Queryable, table: TableName): Promise<TableError> {
  const { rows } = await db.query<{ relkind: string }>(
    `SELECT c.relkind FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = $1 AND c.relname = $2`,
    [table.schema, table.name],
  )
  const refusal = rows[0] && RELKIND_REFUSALS[rows[0].relkind]
  const name = qualifiedName(table)
  return refusal
    ? new TableError(ERROR_CODES.tableNotServable, `${name} ${refusal}`)
    : new TableError(ERROR_CODES.tableNotFound, `table ${name} does not exist (or is not visible to Sluice's role)`)
}
