/**
 * Table metadata for requests, cached briefly so a burst of requests for new shapes does not
 * become a burst of catalog queries. It answers what the catalog says and whether Sluice can
 * serve the table (`servable.ts`); what a request makes of that is for its callers.
 */
import { LRUCache } from 'lru-cache'
import type pg from 'pg'
import { ERROR_CODES, TableError } from '../errors.js'
import { loadTableInfo, type TableInfo } from './introspect.js'
import { notATableError, refusalOf, type ServeOptions } from './servable.js'
import { qualifiedName } from './sql.js'
import type { TableName } from './table-name.js'

const TTL_MS = 5_000

export interface TableCatalogOptions {
  /** The clock entries age by (default: `performance.now`); tests move it rather than wait out the TTL. */
  readonly now?: () => number
}

export class TableCatalog {
  readonly #pool: pg.Pool
  readonly #cache: LRUCache<string, TableInfo>
  /**
   * Look-ups in flight, by table: when an entry expires under a burst of requests for new shapes,
   * they share one load instead of each running the catalog queries (100 loads per expiry at 256
   * concurrent requests).
   */
  readonly #loading = new Map<string, Promise<TableInfo | undefined>>()
  /** Bumped by `clear` and `forget`: a load begun before them must not refill the cache. */
  #generation = 0
  readonly #serve: ServeOptions

  constructor(pool: pg.Pool, serve: ServeOptions, { now }: TableCatalogOptions = {}) {
    this.#pool = pool
    this.#serve = serve
    // `ttlResolution: 0` reads the clock on every look-up (lru-cache otherwise reuses a reading for
    // 1 ms), so a moved clock counts at once; one reading costs nanoseconds next to a request.
    this.#cache = new LRUCache({ max: 10_000, ttl: TTL_MS, ttlResolution: 0, ...(now && { perf: { now } }) })
  }

  /** Forgets everything (the database behind the pool changed). */
  clear(): void {
    this.#cache.clear()
    this.#loading.clear()
    this.#generation++
  }

  /**
   * The table's metadata.
   * @throws TableError (`table_not_found`, `table_not_servable`) saying why Sluice cannot serve it.
   */
  async get(table: TableName): Promise<TableInfo> {
    const info = await this.find(table)
    if (!info) throw await notATableError(this.#pool, table)
    const refusal = refusalOf(info, this.#serve)
    if (refusal) throw new TableError(ERROR_CODES.tableNotServable, refusal)
    return info
  }

  /** The table's metadata, or undefined when there is no such table (not cached). */
  async find(table: TableName): Promise<TableInfo | undefined> {
    const key = qualifiedName(table)
    const cached = this.#cache.get(key)
    if (cached) return cached
    let loading = this.#loading.get(key)
    if (!loading) {
      const generation = this.#generation
      loading = loadTableInfo(this.#pool, table)
        .then((info) => {
          if (info && generation === this.#generation) this.#cache.set(key, info)
          return info
        })
        .finally(() => {
          if (this.#loading.get(key) === loading) this.#loading.delete(key)
        })
      this.#loading.set(key, loading)
    }
    return loading
  }

  /** Forgets one table (its schema just changed). */
  forget(table: TableName): void {
    const key = qualifiedName(table)
    this.#cache.delete(key)
    this.#loading.delete(key)
    this.#generation++
  }
}
