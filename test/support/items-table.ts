/** A one-column `items` table, its pgoutput Relation and shapes of it, for router tests that need no database. */
import type { TableInfo } from '../../src/pg/introspect.js'
import type { Relation } from '../../src/replication/transaction.js'
import { ActiveShape } from '../../src/shapes/active-shape.js'
import { definitionKey, type ShapeDefinition } from '../../src/shapes/shape-definition.js'
import type { CompiledWhere } from '../../src/shapes/where/compile-where.js'
import { parseSnapshotText, visibilityOf } from '../../src/shapes/xid-visibility.js'
import type { StoredShape } from '../../src/storage/shape-log-store.js'
import { relationOf, tableInfo } from './table-info.js'

export const ITEMS_TABLE: TableInfo = tableInfo('items', [{ name: 'id', typeOid: 23, typeName: 'int4', dims: 0, notNull: true, pkIndex: 0 }], { replicaIdentity: 'default' })

export function itemsRelation(replicaIdentity: Relation['replicaIdentity']): Relation {
  return relationOf(ITEMS_TABLE, replicaIdentity)
}

/** A stored shape record on the whole of `table`, as storage would hand it. */
export function storedShape(id: number, table: TableInfo = ITEMS_TABLE, where?: string): StoredShape {
  const definition: ShapeDefinition = { table: table.table, replica: 'default', log: 'full', ...(where === undefined ? {} : { where }) }
  return { id, handle: `h${id}`, definition, definitionKey: definitionKey(definition), status: 'ready', createdAtMs: 0 } as unknown as StoredShape
}

/** A new shape whose snapshot has not started: its transactions are held. */
export function waitingShape(id: number, table: TableInfo = ITEMS_TABLE): ActiveShape {
  return ActiveShape.waiting(storedShape(id, table), { table, where: undefined })
}

/** A snapshot in which 100 and up are still running: it shows none of the tests' transactions. */
export const SHOWS_NONE = visibilityOf(parseSnapshotText('100:100:'))

/** A shape whose snapshot is complete and behind every transaction: it appends them all. */
export function liveShape(id: number, table: TableInfo = ITEMS_TABLE, where?: CompiledWhere): ActiveShape {
  const shape = ActiveShape.waiting(storedShape(id, table, where?.canonical), { table, where })
  shape.startSnapshot(SHOWS_NONE)
  shape.passSnapshot()
  shape.completeSnapshot()
  return shape
}
