/** Tables as the catalog describes them and as pgoutput announces them, for tests that need no database. */
import type { ColumnInfo, TableInfo } from '../../src/pg/introspect.js'
import type { Relation } from '../../src/replication/transaction.js'

export interface TableOptions {
  readonly oid?: number
  readonly replicaIdentity?: TableInfo['replicaIdentity']
}

/** A permanent table in `public` keyed by its `id` column. */
export function tableInfo(name: string, columns: ColumnInfo[], { oid = 1, replicaIdentity = 'full' }: TableOptions = {}): TableInfo {
  return {
    oid,
    table: { schema: 'public', name },
    primaryKey: ['id'],
    replicaIdentity,
    identity: { source: 'primary-key' },
    partitioned: false,
    persistence: 'permanent',
    system: false,
    columns,
  }
}

/** The Relation message pgoutput sends for `info`: its key is the primary key. */
export function relationOf(info: TableInfo, replicaIdentity: Relation['replicaIdentity'] = 'f'): Relation {
  return {
    tag: 'relation',
    oid: info.oid,
    schema: info.table.schema,
    name: info.table.name,
    replicaIdentity,
    columns: info.columns.map((c) => ({ name: c.name, typeOid: c.typeOid, isKey: c.pkIndex !== undefined })),
  }
}
