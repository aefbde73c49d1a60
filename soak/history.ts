/**
 * The ground truth, read back from PostgreSQL: every committed writer transaction in commit
 * order (its clock), with its xid and its row changes (schema.ts). Kept per table as each row's
 * versions, so the state at any cut — a prefix of the commit order plus what a snapshot saw —
 * is the last version of each row inside the cut.
 */
import pg from 'pg'
import { TABLES, type TableName } from './schema.js'

export type Row = Readonly<Record<string, string | null>>

/** A row's value after a transaction (undefined: deleted), or a whole-table reset (TRUNCATE, re-create). */
export interface Version {
  readonly clock: number
  readonly xid: bigint
  readonly row: Row | undefined
}

/** Which committed transactions a client's state should hold. */
export interface Cut {
  /** Every transaction up to this clock (0: none). */
  readonly clock: number
  /** … and every transaction this snapshot sees. */
  readonly snapshot: { readonly xmin: bigint; readonly xmax: bigint; readonly xip: ReadonlySet<bigint> } | undefined
}

class TableHistory {
  readonly rows = new Map<string, Version[]>()
  readonly resets: Version[] = []
}

export class History {
  readonly #tables = new Map<TableName, TableHistory>(Object.keys(TABLES).map((t) => [t as TableName, new TableHistory()]))
  /** Clock of each transaction by its 32-bit xid (what pgoutput, and so Sluice, reports). */
  readonly #clockByXid = new Map<number, number>()
  readonly kinds = new Map<string, number>()
  clock = 0
  rowChanges = 0

  /** Reads what committed since the last call. Throws when PostgreSQL is unreachable. */
  async refresh(url: string): Promise<void> {
    const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5_000 })
    client.on('error', () => undefined)
    await client.connect()
    try {
      // One snapshot for both reads, so every transaction listed has all its changes.
      await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY')
      const txs = await client.query<{ clock: string; xid: string; kind: string }>(
        `SELECT clock::text, xid::text, kind FROM soak_tx WHERE clock > $1 ORDER BY soak_tx.clock`,
        [this.clock],
      )
      if (txs.rows.length === 0) return
      const changes = await client.query<{ xid: string; tbl: TableName; op: string; id: string | null; row: Row | null }>(
        `SELECT h.xid::text, h.tbl, h.op, h.id::text, h.row FROM soak_history h JOIN soak_tx t ON t.xid = h.xid WHERE t.clock > $1 ORDER BY h.seq`,
        [this.clock],
      )
      const byXid = new Map<string, typeof changes.rows>()
      for (const change of changes.rows) {
        const list = byXid.get(change.xid)
        if (list) list.push(change)
        else byXid.set(change.xid, [change])
      }
      for (const tx of txs.rows) {
        const clock = Number(tx.clock)
        if (clock !== this.clock + 1) throw new Error(`history: clock ${clock} follows ${this.clock}`)
        this.clock = clock
        const xid = BigInt(tx.xid)
        this.#clockByXid.set(Number(xid & 0xffff_ffffn), clock)
        this.kinds.set(tx.kind, (this.kinds.get(tx.kind) ?? 0) + 1)
        for (const change of byXid.get(tx.xid) ?? []) this.#apply(clock, xid, change)
      }
    } finally {
      await client.query('COMMIT').catch(() => undefined)
      await client.end().catch(() => undefined)
    }
  }

  /** The clock of the transaction with this (32-bit) xid, if it is known yet. */
  clockOf(xid: number): number | undefined {
    return this.#clockByXid.get(xid)
  }

  /** Every version of one row, in commit order, and the table's resets (to explain a mismatch). */
  versionsOf(table: TableName, id: string): { readonly versions: readonly Version[]; readonly resets: readonly Version[] } {
    const history = this.#tables.get(table)!
    return { versions: history.rows.get(id) ?? [], resets: history.resets }
  }

  /** Rows of `table` as of `cut`, by primary key, keeping those `keep` accepts. */
  stateAt(table: TableName, cut: Cut, keep: (row: Row) => boolean): Map<string, Row> {
    const history = this.#tables.get(table)!
    const inCut = (v: Version) => isInCut(v, cut)
    const reset = lastIn(history.resets, inCut)
    const state = new Map<string, Row>()
    for (const [id, versions] of history.rows) {
      const version = lastIn(versions, inCut)
      if (!version?.row || (reset && reset.clock > version.clock)) continue
      if (keep(version.row)) state.set(id, version.row)
    }
    return state
  }

  #apply(clock: number, xid: bigint, change: { tbl: TableName; op: string; id: string | null; row: Row | null }): void {
    const table = this.#tables.get(change.tbl)
    if (!table) return
    this.rowChanges++
    if (change.op === 'reset') {
      table.resets.push({ clock, xid, row: undefined })
      return
    }
    const version = { clock, xid, row: change.op === 'delete' ? undefined : change.row! }
    const versions = table.rows.get(change.id!)
    if (!versions) table.rows.set(change.id!, [version])
    else if (versions.at(-1)!.clock === clock) versions[versions.length - 1] = version
    else versions.push(version)
  }
}

/** Whether a client at `cut` must hold this version (or a later one). */
export function isInCut(version: Version, cut: Cut): boolean {
  return version.clock <= cut.clock || (cut.snapshot !== undefined && visible(version.xid, cut.snapshot))
}

/** `pg_current_snapshot()` visibility of a committed transaction. */
function visible(xid: bigint, snapshot: NonNullable<Cut['snapshot']>): boolean {
  return xid < snapshot.xmin || (xid < snapshot.xmax && !snapshot.xip.has(xid))
}

function lastIn(versions: readonly Version[], inCut: (v: Version) => boolean): Version | undefined {
  for (let i = versions.length - 1; i >= 0; i--) if (inCut(versions[i]!)) return versions[i]
  return undefined
}
