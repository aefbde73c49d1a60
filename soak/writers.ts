/**
 * The soak's write load, straight to PostgreSQL (not through the proxy Sluice uses): small
 * transactions on `accounts`, transactions over `accounts` and `ledger`, and now and then a
 * large transaction on `bulk`, a schema change, a TRUNCATE, or `scratch` dropped and re-created.
 * Writes fail while PostgreSQL restarts; a writer then backs off and carries on. Every
 * transaction ends with the clock (schema.ts), so the history knows its commit order.
 */
import { setTimeout as sleep } from 'node:timers/promises'
import pg from 'pg'
import { Random } from './random.js'
import { CANARY_ID, CREATE_TABLE, clockStatement, historyTriggers } from './schema.js'

export const TX_KIND = {
  small: 'small',
  multiTable: 'multi-table',
  large: 'large',
  schemaChange: 'schema-change',
  truncate: 'truncate',
  recreate: 'drop-and-recreate',
  canary: 'canary',
} as const
export type TxKind = (typeof TX_KIND)[keyof typeof TX_KIND]

export interface WriterOptions {
  readonly url: string
  readonly random: Random
  /** Rows of a large transaction (100,000 in the full soak). */
  readonly largeRows: number
  /** Mean pause between two rare transactions (large, schema, TRUNCATE, re-create). */
  readonly rareEveryMs: number
}

const ACCOUNT_IDS = 1_000
const OWNERS = 8

export class Writers {
  readonly committed = new Map<TxKind, number>()
  failed = 0
  #stopped = false
  #running: Promise<void>[] = []
  #nextLedgerId = 1
  #extraColumn = false
  #canary = 0

  constructor(readonly options: WriterOptions) {}

  start(smallWriters: number): void {
    for (let i = 0; i < smallWriters; i++) this.#running.push(this.#loop(this.options.random.fork(), (r) => this.#small(r), 5))
    this.#running.push(this.#loop(this.options.random.fork(), (r) => this.#rare(r), this.options.rareEveryMs))
  }

  async stop(): Promise<void> {
    this.#stopped = true
    await Promise.all(this.#running)
  }

  get total(): number {
    let n = 0
    for (const count of this.committed.values()) n += count
    return n
  }

  /** Commits one update of the canary row; resolves with the value it wrote (retries while PostgreSQL is down). */
  async canary(deadline: number): Promise<number> {
    const value = ++this.#canary
    for (;;) {
      try {
        await this.#transaction(TX_KIND.canary, [`UPDATE accounts SET v = ${value} WHERE id = ${CANARY_ID}`])
        return value
      } catch (error) {
        if (Date.now() > deadline) throw error
        await sleep(200)
      }
    }
  }

  async #loop(random: Random, step: (random: Random) => Promise<void>, pauseMs: number): Promise<void> {
    while (!this.#stopped) {
      try {
        await step(random)
      } catch {
        this.failed++
        await sleep(250)
      }
      await sleep(random.int(0, pauseMs * 2))
    }
  }

  #small(random: Random): Promise<void> {
    const statements: string[] = []
    const multi = random.chance(0.3)
    // Ascending ids, so two writers never lock the same rows in opposite orders.
    const ids = Array.from({ length: random.int(1, 5) }, () => random.int(1, ACCOUNT_IDS)).sort((a, b) => a - b)
    for (const id of ids) {
      statements.push(
        random.chance(0.2)
          ? `DELETE FROM accounts WHERE id = ${id}`
          : `INSERT INTO accounts VALUES (${id}, ${random.int(0, OWNERS - 1)}, 0, 'n${random.int(0, 99)}') ON CONFLICT (id) DO UPDATE SET v = accounts.v + 1, owner = EXCLUDED.owner`,
      )
      if (multi) statements.push(`INSERT INTO ledger VALUES (${this.#nextLedgerId++}, ${id}, ${random.int(-50, 50)})`)
    }
    if (random.chance(0.2)) statements.push(`INSERT INTO scratch VALUES (${random.int(1, 200)}, 1) ON CONFLICT (id) DO UPDATE SET v = scratch.v + 1`)
    return this.#transaction(multi ? TX_KIND.multiTable : TX_KIND.small, statements)
  }

  #rare(random: Random): Promise<void> {
    const pick = random.next()
    if (pick < 0.55) return this.#large(random)
    if (pick < 0.7) {
      this.#extraColumn = !this.#extraColumn
      return this.#transaction(TX_KIND.schemaChange, [
        this.#extraColumn ? `ALTER TABLE accounts ADD COLUMN IF NOT EXISTS extra int` : `ALTER TABLE accounts DROP COLUMN IF EXISTS extra`,
      ])
    }
    if (pick < 0.85) return this.#transaction(TX_KIND.truncate, ['TRUNCATE ledger'])
    return this.#transaction(TX_KIND.recreate, [
      'DROP TABLE scratch',
      CREATE_TABLE.scratch,
      historyTriggers('scratch'),
      `INSERT INTO soak_history (xid, tbl, op) VALUES (pg_current_xact_id(), 'scratch', 'reset')`,
      `INSERT INTO scratch SELECT g, 0 FROM generate_series(1, 20) g`,
    ])
  }

  /** Fills `bulk` (or rewrites the rows it has) in one large transaction. */
  large(): Promise<void> {
    return this.#transaction(TX_KIND.large, [this.#fill()])
  }

  /** Fills `bulk`, rewrites every row of it, or empties it, in one transaction. */
  #large(random: Random): Promise<void> {
    const statement = random.pick([this.#fill(), `UPDATE bulk SET grp = grp + 1, payload = md5(payload)`, `DELETE FROM bulk`])
    return this.#transaction(TX_KIND.large, [statement])
  }

  #fill(): string {
    return `INSERT INTO bulk SELECT g, 0, md5(g::text) FROM generate_series(1, ${this.options.largeRows}) g ON CONFLICT (id) DO UPDATE SET grp = bulk.grp + 1`
  }

  async #transaction(kind: TxKind, statements: string[]): Promise<void> {
    const client = new pg.Client({ connectionString: this.options.url, connectionTimeoutMillis: 5_000 })
    client.on('error', () => undefined) // PostgreSQL going away mid-query: the query rejects too
    await client.connect()
    try {
      await client.query(`BEGIN; SET LOCAL lock_timeout = '3s'; SET LOCAL statement_timeout = '120s'`)
      for (const statement of statements) await client.query(statement)
      await client.query(clockStatement(kind))
      await client.query('COMMIT')
      this.committed.set(kind, (this.committed.get(kind) ?? 0) + 1)
    } finally {
      await client.end().catch(() => undefined)
    }
  }
}
