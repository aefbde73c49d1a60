/**
 * What Sluice needs to know about a table: its columns (with the type names the client's
 * parser keys on), its row identity, its replica identity and what decides whether
 * PostgreSQL publishes it at all (`servable.ts` judges that). Read from the catalogs
 * (`pg_class`, `pg_attribute`, `pg_type`, `pg_index`) rather than `information_schema`,
 * which hides tables the role cannot write and reports types by SQL-standard names.
 * Domains are resolved to their base type for `where`, but `electric-schema` names them as
 * Electric does — by the domain's own name, without modifiers — so the client parses their
 * values as text, exactly as it does against Electric.
 */
import type { QueryResult, QueryResultRow } from 'pg'
import type { SchemaSourceColumn } from '../protocol/electric-schema.js'
import type { TableName } from './table-name.js'

/** Anything that runs a query: a `pg.Pool`, `pg.Client` or `pg.PoolClient`. */
export interface Queryable {
  query<R extends QueryResultRow = QueryResultRow>(text: string, values?: unknown[]): Promise<QueryResult<R>>
}

/** A column as the catalog describes it: what `electric-schema` says of it, and more. */
export interface ColumnInfo extends SchemaSourceColumn {
  /** The declared type as pgoutput reports it (a domain's own OID, not its base type's). */
  readonly typeOid: number
  /** For enum columns (and arrays of enums): the labels in sort order. */
  readonly enumLabels?: readonly string[]
}

export const REPLICA_IDENTITIES = { default: 'default', nothing: 'nothing', full: 'full', index: 'index' } as const
export type ReplicaIdentity = (typeof REPLICA_IDENTITIES)[keyof typeof REPLICA_IDENTITIES]

/**
 * Where a table's row identity comes from. `allColumns`: the table has none, and every column
 * together stands in (Electric's key for such tables; identical rows share it).
 */
export const IDENTITY_SOURCES = {
  primaryKey: 'primary-key',
  replicaIdentityIndex: 'replica-identity-index',
  uniqueIndex: 'unique-index',
  allColumns: 'all-columns',
} as const
export type IdentitySource = (typeof IDENTITY_SOURCES)[keyof typeof IDENTITY_SOURCES]

export const PERSISTENCES = { permanent: 'permanent', unlogged: 'unlogged', temporary: 'temporary' } as const
export type Persistence = (typeof PERSISTENCES)[keyof typeof PERSISTENCES]

export interface TableInfo {
  readonly oid: number
  readonly table: TableName
  readonly columns: readonly ColumnInfo[]
  /** The row identity's column names in key order (all columns for `allColumns`). */
  readonly primaryKey: readonly string[]
  /** `deferrablePrimaryKey`: the table has a primary key, but a DEFERRABLE one, which cannot serve. */
  readonly identity: { readonly source: IdentitySource; readonly index?: string; readonly deferrablePrimaryKey?: true }
  readonly replicaIdentity: ReplicaIdentity
  readonly partitioned: boolean
  readonly persistence: Persistence
  /** Created by initdb (system catalogs, information_schema): PostgreSQL never publishes it. */
  readonly system: boolean
}

const RELREPLIDENT: Readonly<Record<string, ReplicaIdentity>> = {
  d: 'default',
  n: 'nothing',
  f: 'full',
  i: 'index',
}

const RELPERSISTENCE: Readonly<Record<string, Persistence>> = { p: 'permanent', u: 'unlogged', t: 'temporary' }

/** PostgreSQL stores varlena type modifiers with the 4-byte header length added. */
const VARHDRSZ = 4

/** OIDs below it belong to objects made by initdb; pgoutput publishes none of them. */
const FIRST_NORMAL_OBJECT_ID = 16384

interface IdentityIndex {
  readonly name: string
  readonly keys: number[]
}

/**
 * Loads the columns, row identity and replica identity of a regular or partitioned table.
 *
 * The identity is the primary key, else the replica identity index, else the unique index over
 * NOT NULL columns with the fewest columns (then the first by name). Only non-partial,
 * non-deferrable indexes on plain columns qualify, the primary key included: a deferrable one
 * may hold two rows with one key inside a transaction, and the log replays every intermediate
 * row (swapping two keys would merge the rows on the client). Sluice's REPLICA IDENTITY FULL
 * clears the replica identity mark, after which the same index usually wins as a unique index;
 * if another one does, the shape sees its identity change and is rotated (`schema-drift.ts`).
 * @returns undefined when there is no such table (views and other relations included).
 */
export async function loadTableInfo(db: Queryable, table: TableName): Promise<TableInfo | undefined> {
  const relation = await db.query<{
    oid: number
    relkind: string
    relpersistence: string
    relreplident: string
    pk: number[] | null
    pk_deferrable: boolean
    replica_index: IdentityIndex | null
    unique_index: IdentityIndex | null
  }>(
    `SELECT c.oid, c.relkind, c.relpersistence, c.relreplident,
            (SELECT i.indkey::int2[]::int4[] FROM pg_catalog.pg_index i
              WHERE i.indrelid = c.oid AND i.indisprimary AND i.indimmediate) AS pk,
            EXISTS (SELECT 1 FROM pg_catalog.pg_index i
                     WHERE i.indrelid = c.oid AND i.indisprimary AND NOT i.indimmediate) AS pk_deferrable,
            (SELECT json_build_object('name', ic.relname, 'keys', (i.indkey::int2[])[0:i.indnkeyatts - 1])
               FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
              WHERE i.indrelid = c.oid AND i.indisreplident) AS replica_index,
            (SELECT json_build_object('name', ic.relname, 'keys', (i.indkey::int2[])[0:i.indnkeyatts - 1])
               FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
              WHERE i.indrelid = c.oid AND i.indisunique AND i.indimmediate AND i.indisvalid
                AND i.indpred IS NULL AND i.indexprs IS NULL
                AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a
                                 WHERE a.attrelid = c.oid AND a.attnum = ANY ((i.indkey::int2[])[0:i.indnkeyatts - 1])
                                   AND NOT a.attnotnull)
              ORDER BY i.indnkeyatts, ic.relname LIMIT 1) AS unique_index
       FROM pg_catalog.pg_class c
       JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')`,
    [table.schema, table.name],
  )
  const row = relation.rows[0]
  if (!row) return undefined

  // Sequential: `db` may be a single pg.Client, which must not be sent overlapping queries.
  const attributes = await loadAttributes(db, row.oid)
  const types = await loadTypes(db, row.oid)
  const enumLabels = await loadEnumLabels(db, types)
  const identity: TableInfo['identity'] = row.pk
    ? { source: IDENTITY_SOURCES.primaryKey }
    : row.replica_index
      ? { source: IDENTITY_SOURCES.replicaIdentityIndex, index: row.replica_index.name }
      : row.unique_index
        ? { source: IDENTITY_SOURCES.uniqueIndex, index: row.unique_index.name }
        : { source: IDENTITY_SOURCES.allColumns, ...(row.pk_deferrable ? { deferrablePrimaryKey: true } : {}) }
  const keyAttnums = row.pk ?? row.replica_index?.keys ?? row.unique_index?.keys ?? []
  const columns = attributes.map((attribute): ColumnInfo => {
    const position = keyAttnums.indexOf(attribute.attnum)
    return {
      name: attribute.attname,
      typeOid: attribute.atttypid,
      notNull: attribute.attnotnull,
      pkIndex: position === -1 ? undefined : position,
      ...describeType(types, attribute, enumLabels),
    }
  })
  const byAttnum = new Map(attributes.map((a) => [a.attnum, a.attname]))
  const primaryKey =
    keyAttnums.length > 0 ? keyAttnums.map((attnum) => byAttnum.get(attnum) ?? missing(table, attnum)) : columns.map((c) => c.name)

  return {
    oid: row.oid,
    table,
    columns,
    primaryKey,
    identity,
    replicaIdentity: RELREPLIDENT[row.relreplident] ?? 'default',
    partitioned: row.relkind === 'p',
    persistence: RELPERSISTENCE[row.relpersistence] ?? 'permanent',
    system: row.oid < FIRST_NORMAL_OBJECT_ID,
  }
}

interface AttributeRow {
  readonly attnum: number
  readonly attname: string
  readonly atttypid: number
  readonly atttypmod: number
  readonly attndims: number
  readonly attnotnull: boolean
}

async function loadAttributes(db: Queryable, oid: number): Promise<AttributeRow[]> {
  const result = await db.query<AttributeRow>(
    `SELECT attnum, attname, atttypid, atttypmod, attndims, attnotnull
       FROM pg_catalog.pg_attribute
      WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped
      ORDER BY attnum`,
    [oid],
  )
  return result.rows
}

interface TypeRow {
  readonly oid: number
  readonly typname: string
  /** 'd' for domains */
  readonly typtype: string
  readonly typbasetype: number
  readonly typtypmod: number
  readonly typelem: number
  readonly is_array: boolean
}

/** The column types plus every type reached through domain bases and array elements. */
async function loadTypes(db: Queryable, oid: number): Promise<Map<number, TypeRow>> {
  const result = await db.query<TypeRow>(
    `WITH RECURSIVE types AS (
       SELECT t.oid, t.typname, t.typtype, t.typbasetype, t.typtypmod, t.typelem,
              t.typsubscript = 'pg_catalog.array_subscript_handler'::regproc AS is_array
         FROM pg_catalog.pg_type t
        WHERE t.oid IN (SELECT atttypid FROM pg_catalog.pg_attribute
                         WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped)
       UNION
       SELECT t.oid, t.typname, t.typtype, t.typbasetype, t.typtypmod, t.typelem,
              t.typsubscript = 'pg_catalog.array_subscript_handler'::regproc
         FROM pg_catalog.pg_type t
         JOIN types ON t.oid = types.typbasetype OR (types.is_array AND t.oid = types.typelem)
     )
     SELECT * FROM types`,
    [oid],
  )
  return new Map(result.rows.map((row) => [row.oid, row]))
}

/** Labels of the enum types among `types`, for `where` clauses over enum columns. */
async function loadEnumLabels(db: Queryable, types: ReadonlyMap<number, TypeRow>): Promise<Map<number, string[]>> {
  const enums = [...types.values()].filter((t) => t.typtype === 'e').map((t) => t.oid)
  const labels = new Map<number, string[]>()
  if (enums.length === 0) return labels
  const result = await db.query<{ enumtypid: number; enumlabel: string }>(
    `SELECT enumtypid, enumlabel FROM pg_catalog.pg_enum WHERE enumtypid = ANY($1::oid[]) ORDER BY enumtypid, enumsortorder`,
    [enums],
  )
  for (const row of result.rows) {
    let list = labels.get(row.enumtypid)
    if (!list) labels.set(row.enumtypid, (list = []))
    list.push(row.enumlabel)
  }
  return labels
}

type TypeDescription = Pick<ColumnInfo, 'typeName' | 'dims' | 'declared' | 'maxLength' | 'length' | 'precision' | 'scale' | 'enumLabels'>

function describeType(types: ReadonlyMap<number, TypeRow>, attribute: AttributeRow, enumLabels: ReadonlyMap<number, string[]>): TypeDescription {
  const outer = lookup(types, attribute.atttypid)
  let { type, typmod, viaDomain } = resolveDomain(types, attribute.atttypid, attribute.atttypmod)
  let dims = 0
  let declared = outer.typname
  if (type.is_array) {
    // attndims is only a declaration (0 for e.g. CREATE TABLE AS or a domain over an array);
    // PostgreSQL does not enforce it, but an array column has at least one dimension.
    dims = Math.max(attribute.attndims, 1)
    if (outer.is_array) declared = lookup(types, outer.typelem).typname
    // An array column's typmod is its element's.
    const element = resolveDomain(types, type.typelem, typmod)
    ;({ type, typmod } = element)
    viaDomain ||= element.viaDomain
  }
  const labels = enumLabels.get(type.oid)
  return {
    typeName: type.typname,
    dims,
    ...(viaDomain ? { declared: { typeName: declared, dims: outer.typtype === 'd' ? 0 : dims } } : typeModifiers(type.typname, typmod)),
    ...(labels ? { enumLabels: labels } : {}),
  }
}

function resolveDomain(types: ReadonlyMap<number, TypeRow>, oid: number, typmod: number): { type: TypeRow; typmod: number; viaDomain: boolean } {
  let type = lookup(types, oid)
  let viaDomain = false
  while (type.typtype === 'd') {
    if (typmod === -1) typmod = type.typtypmod
    type = lookup(types, type.typbasetype)
    viaDomain = true
  }
  return { type, typmod, viaDomain }
}

function lookup(types: ReadonlyMap<number, TypeRow>, oid: number): TypeRow {
  const type = types.get(oid)
  // Only possible when the table's columns changed between our catalog queries.
  if (!type) throw new Error(`Type ${oid} vanished while reading the table's columns; retry`)
  return type
}

/** Decodes `atttypmod` the way PostgreSQL's `format_type` does for the types the client knows. */
export function typeModifiers(typeName: string, typmod: number): Pick<ColumnInfo, 'maxLength' | 'length' | 'precision' | 'scale'> {
  if (typmod < VARHDRSZ) return {}
  const value = typmod - VARHDRSZ
  switch (typeName) {
    case 'varchar':
      return { maxLength: value }
    case 'bpchar':
      return { length: value }
    case 'numeric':
      // Precision in the high 16 bits; scale in the low 11 bits as a signed number (PG 15
      // allows negative scales, e.g. numeric(5, -2)).
      return { precision: (value >> 16) & 0xffff, scale: ((value & 0x7ff) ^ 1024) - 1024 }
    default:
      return {}
  }
}

function missing(table: TableName, attnum: number): never {
  throw new Error(`Key column ${attnum} of ${table.schema}.${table.name} vanished; retry`)
}
