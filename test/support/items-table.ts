/** A one-column `items` table and its pgoutput Relation, for router tests that need no database. */
import type { TableInfo } from '../../src/pg/introspect.js'
import type { Relation } from '../../src/replication/transaction.js'

export const ITEMS_TABLE: TableInfo = {
  oid: 1,
  table: { schema: 'public', name: 'items' },
  primaryKey: ['id'],
  replicaIdentity: 'default',
  identity: { source: 'primary-key' },
  partitioned: false,
  persistence: 'permanent',
  system: false,
  columns: [{ name: 'id', typeOid: 23, typeName: 'int4', dims: 0, notNull: true, pkIndex: 0 }],
}

export function itemsRelation(replicaIdentity: Relation['replicaIdentity']): Relation {
  return { tag: 'relation', oid: 1, schema: 'public', name: 'items', replicaIdentity, columns: [{ name: 'id', typeOid: 23, isKey: true }] }
}
