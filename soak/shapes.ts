/**
 * The shapes the followers ask for, each with what the checker needs to compute its rows from
 * the history: the same `where` as a predicate, and the columns it keeps. A subset-snapshot
 * shape, once Sluice serves them, is one more entry here and a follower kind in followers.ts.
 */
import type { Row } from './history.js'
import { TABLES, type TableName } from './schema.js'

export interface ShapeSpec {
  readonly name: string
  readonly table: TableName
  /** Query parameters besides `table` (where, params, columns, replica). */
  readonly params: Readonly<Record<string, string>>
  readonly keep: (row: Row) => boolean
  /** Columns compared: the shape's own, or the table's (a schema change's extra column is not compared). */
  readonly columns: readonly string[]
}

const all = () => true

export const SHAPES = {
  accounts: { name: 'accounts', table: 'accounts', params: {}, keep: all, columns: TABLES.accounts },
  accountsFull: { name: 'accounts replica=full', table: 'accounts', params: { replica: 'full' }, keep: all, columns: TABLES.accounts },
  accountsOwner: {
    name: 'accounts where owner < 3',
    table: 'accounts',
    params: { where: 'owner < 3' },
    keep: (row) => Number(row['owner']) < 3,
    columns: TABLES.accounts,
  },
  accountsColumns: {
    name: 'accounts columns=id,v where v > 2',
    table: 'accounts',
    params: { columns: 'id,v', where: 'v > 2' },
    keep: (row) => Number(row['v']) > 2,
    columns: ['id', 'v'],
  },
  ledger: { name: 'ledger', table: 'ledger', params: {}, keep: all, columns: TABLES.ledger },
  bulk: { name: 'bulk', table: 'bulk', params: {}, keep: all, columns: TABLES.bulk },
  bulkSome: { name: 'bulk where id <= 2000', table: 'bulk', params: { where: 'id <= 2000' }, keep: (row) => Number(row['id']) <= 2000, columns: TABLES.bulk },
  scratch: { name: 'scratch', table: 'scratch', params: {}, keep: all, columns: TABLES.scratch },
} as const satisfies Record<string, ShapeSpec>

/** A row as compared: the spec's columns, values as text (the Electric client parses numbers). */
export function comparable(spec: ShapeSpec, row: Readonly<Record<string, unknown>>): string {
  return JSON.stringify(spec.columns.map((column) => (row[column] === null || row[column] === undefined ? null : String(row[column]))))
}
