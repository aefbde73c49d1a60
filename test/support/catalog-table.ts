/** An `items` table as the catalog describes it, for `where` and snapshot-plan tests that need no database. */
import type { ColumnInfo, TableInfo } from '../../src/pg/introspect.js'
import { tableInfo } from './table-info.js'

/** A nullable scalar column; `id` is the primary key. */
export const column = (name: string, typeName: string, extra: Partial<ColumnInfo> = {}): ColumnInfo => ({
  name,
  typeOid: 0,
  typeName,
  dims: 0,
  notNull: false,
  pkIndex: name === 'id' ? 0 : undefined,
  ...extra,
})

export const itemsTable = (columns: ColumnInfo[]): TableInfo => tableInfo('items', columns)
