/** How far storage is behind the WAL PostgreSQL has written, for `/metrics`. */
import type pg from 'pg'
import type { Lsn } from './lsn.js'

/** WAL bytes past `durableLsn`; undefined when PostgreSQL cannot be asked. */
export async function walBytesPast(pool: pg.Pool, durableLsn: Lsn): Promise<number | undefined> {
  const { rows } = await pool.query<{ lsn: string }>(`SELECT (pg_current_wal_lsn() - '0/0')::text AS lsn`).catch(() => ({ rows: [] }))
  const current = rows[0] ? BigInt(rows[0].lsn) : undefined
  return current === undefined ? undefined : Number(current > durableLsn ? current - durableLsn : 0n)
}
