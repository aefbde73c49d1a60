/**
 * Tables a new shape may be snapshotted on: in the publication, REPLICA IDENTITY FULL, and every
 * transaction older than their joining ended (docs/ARCHITECTURE.md I2, `publication.ts`). After a
 * deploy thousands of new shapes of one table arrive a second; each asked the catalog again (a
 * query over the publication's tables and the table's partitions, 500 of them for 10,000
 * shapes). Shapes created at once share one check, and a table found replicated is taken as
 * such for a second: the window in which a table taken out of the publication by hand still gets
 * new shapes (its existing shapes, like Electric's, are not told either).
 */
import { LRUCache } from 'lru-cache'
import type { Logger } from '../log.js'
import type { Queryable, TableInfo } from './introspect.js'
import { ensureTableReplicated, waitForTransactionsBefore } from './publication.js'
import { qualifiedName } from './sql.js'

/** How long a table found replicated is not checked again. */
export const REPLICATED_MEMORY_MS = 1_000

export interface TableReplicationOptions {
  readonly db: Queryable
  readonly publication: string
  readonly log: Logger
  /** The clock the memory ages by (default: `performance.now`); tests move it. */
  readonly now?: () => number
}

export class TableReplication {
  readonly #options: TableReplicationOptions
  /** Checks in flight, by table. */
  readonly #checking = new Map<string, Promise<void>>()
  /** Tables found replicated within the last REPLICATED_MEMORY_MS. */
  readonly #replicated: LRUCache<string, true>

  constructor(options: TableReplicationOptions) {
    this.#options = options
    const { now } = options
    this.#replicated = new LRUCache({ max: 10_000, ttl: REPLICATED_MEMORY_MS, ttlResolution: 0, ...(now && { perf: { now } }) })
  }

  /** Resolves once `table` is replicated and no transaction older than its joining is open. */
  ensure(table: TableInfo): Promise<void> {
    // By OID too: a table dropped and created again under its name must join again.
    const key = `${table.oid}:${qualifiedName(table.table)}`
    if (this.#replicated.has(key)) return Promise.resolve()
    let checking = this.#checking.get(key)
    if (!checking) {
      checking = this.#check(table)
        .then(() => void this.#replicated.set(key, true))
        .finally(() => this.#checking.delete(key))
      this.#checking.set(key, checking)
    }
    return checking
  }

  async #check(table: TableInfo): Promise<void> {
    const { db, publication, log } = this.#options
    const replicated = await ensureTableReplicated(db, publication, table)
    if (!replicated.changed) return
    // Changes written before the table joined the publication are not decoded, even when
    // their transaction commits later: wait those transactions out before the snapshot.
    await waitForTransactionsBefore(db, replicated.xid, (waitedMs: number) =>
      log.warn({ table: table.table, waitedMs }, 'waiting for older transactions to end before the first snapshot of this table'),
    )
  }
}
