/**
 * Move-in reads of one pool, read together when they wait (docs/ARCHITECTURE.md I32). Each read
 * asks the pool for a connection as soon as it is asked for, as if alone, so a slow one holds up
 * no other. A connection that comes when reads are waiting serves the oldest, with every other
 * waiting read of the same table (plain moves only: nested ones need rows first and are read
 * alone): one transaction, one snapshot, one query. So when connections are short (many
 * move-ins at once, or a busy PostgreSQL), the reads that queue cost one round trip and one plan,
 * not one each, and none waits longer than the read ahead of it. A connection whose read was
 * taken along by another serves the next waiting one, or goes back to the pool.
 */
import type pg from 'pg'
import type { TableInfo } from '../../pg/introspect.js'
import { qualifiedName } from '../../pg/sql.js'
import { readMoveIns, type MoveInRead, type MoveInRequest } from './move-in.js'

/** Reads in one query at most: PostgreSQL tests each row it reads against every read's values. */
export const MAX_READS_TOGETHER = 20

interface Waiting extends MoveInRequest {
  readonly table: TableInfo
  readonly resolve: (read: MoveInRead) => void
  readonly reject: (error: unknown) => void
}

const ofPool = new WeakMap<pg.Pool, MoveInReads>()

/** The move-in reads of `pool`: every shape reading through one pool shares them. */
export function moveInReadsOf(pool: pg.Pool): MoveInReads {
  let reads = ofPool.get(pool)
  if (!reads) ofPool.set(pool, (reads = new MoveInReads(pool)))
  return reads
}

export class MoveInReads {
  readonly #pool: pg.Pool
  /** Reads not yet taken by a connection, oldest first. */
  readonly #waiting: Waiting[] = []

  constructor(pool: pg.Pool) {
    this.#pool = pool
  }

  read(table: TableInfo, request: MoveInRequest): Promise<MoveInRead> {
    return new Promise((resolve, reject) => {
      this.#waiting.push({ ...request, table, resolve, reject })
      void this.#serve()
    })
  }

  /** One connection for the reads waiting when it comes (there are at least as many of these running as reads waiting). */
  async #serve(): Promise<void> {
    let client: pg.PoolClient
    try {
      client = await this.#pool.connect()
    } catch (error) {
      this.#waiting.shift()?.reject(error)
      return
    }
    const first = this.#waiting.shift()
    if (!first) {
      client.release()
      return
    }
    const together = [first, ...this.#sameTable(first)]
    let broken = false
    try {
      const reads = await readMoveIns(client, first.table, together)
      together.forEach((waiting, i) => waiting.resolve(reads[i]!))
    } catch (error) {
      broken = true
      for (const waiting of together) waiting.reject(error)
    } finally {
      client.release(broken)
    }
  }

  /** Takes the waiting reads that can share `first`'s query. */
  #sameTable(first: Waiting): Waiting[] {
    if (typeof first.moves === 'function') return []
    const key = tableKey(first.table)
    const taken: Waiting[] = []
    for (let i = 0; i < this.#waiting.length && taken.length < MAX_READS_TOGETHER - 1; ) {
      const candidate = this.#waiting[i]!
      if (typeof candidate.moves !== 'function' && tableKey(candidate.table) === key) taken.push(...this.#waiting.splice(i, 1))
      else i++
    }
    return taken
  }
}

/** A table as a read sees it: the same name with other columns (a shape not yet ended by a schema change) is another. */
function tableKey(table: TableInfo): string {
  return `${qualifiedName(table.table)} ${table.columns.map((column) => `${column.name}:${column.typeOid}`).join(',')}`
}
