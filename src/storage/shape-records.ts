/**
 * Shape records and the table descriptions they name (docs/ARCHITECTURE.md I33). A record is
 * written when its shape is created and again when its snapshot ends, and most of a record that
 * carried its own copy of its table (a start compares it with the table it finds) was that copy:
 * about 1 KB of JSON for a small table, encoded twice per new shape and parsed once per shape at
 * a start. So each description is stored once, keyed by the relation's OID and a hash of the
 * description, in the write transaction of the first record that names it; records name it by
 * that key, and the records read share one object per description. Records written before keep
 * their copy inline and are read as they are.
 */
import { createHash } from 'node:crypto'
import type { TableInfo } from '../pg/introspect.js'
import type { LogDatabases } from './log-databases.js'
import type { StoredShape } from './stored-shape.js'

/** A record as stored: the table by key, or (written before descriptions were stored apart) inline. */
export type StoredRecord = StoredShape & {
  /** The key of its table's description in `tables`. */
  readonly tableKey?: string
}

export class ShapeRecords {
  readonly #dbs: LogDatabases
  /** Descriptions read, by key: the records of a table share one. */
  readonly #read = new Map<string, TableInfo>()
  /**
   * Keys of descriptions stored or put by a write transaction already run. Only a failed write
   * can make one wrong, and nothing is written after that (`write-queue.ts`).
   */
  readonly #stored = new Set<string>()
  /** Each description's key by object: shapes of a table are bound to the catalog's one, so most are hashed once. */
  readonly #keys = new WeakMap<TableInfo, string>()

  constructor(dbs: LogDatabases) {
    this.#dbs = dbs
  }

  get(id: number): StoredShape | undefined {
    const record = this.#dbs.shapes.get(id)
    return record && this.decode(record)
  }

  all(): StoredShape[] {
    return [...this.#dbs.shapes.getRange()].map(({ value }) => this.decode(value))
  }

  /** The shape a stored record describes; a description that cannot be found leaves `table` out, as for records older than it. */
  decode(record: StoredRecord): StoredShape {
    const { tableKey, ...rest } = record
    if (tableKey === undefined) return rest
    let table = this.#read.get(tableKey)
    if (!table) {
      table = this.#dbs.tables.get(tableKey)
      if (!table) return rest
      this.#read.set(tableKey, table)
    }
    return { ...rest, table }
  }

  /** Inside a write transaction: puts the shape's record, and its table's description unless stored; returns the record as stored. */
  put(shape: StoredShape): StoredRecord {
    const { table, ...rest } = shape
    const record: StoredRecord = table ? { ...rest, tableKey: this.#storeDescription(table) } : rest
    this.#dbs.shapes.putSync(shape.id, record)
    return record
  }

  #storeDescription(table: TableInfo): string {
    let key = this.#keys.get(table)
    if (key === undefined) {
      key = `${table.oid}:${createHash('sha256').update(JSON.stringify(table)).digest('base64url').slice(0, 22)}`
      this.#keys.set(table, key)
    }
    if (!this.#stored.has(key)) {
      if (!this.#dbs.tables.doesExist(key)) this.#dbs.tables.putSync(key, table)
      this.#stored.add(key)
      this.#read.set(key, table)
    }
    return key
  }
}

/** The keys of descriptions no record names (their shapes are gone). */
export function unnamedDescriptions(dbs: LogDatabases, records: readonly StoredRecord[]): string[] {
  const named = new Set(records.map((record) => record.tableKey))
  return [...dbs.tables.getKeys()].filter((key) => !named.has(key))
}
