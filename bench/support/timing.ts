/** Clocks, waits and sizes shared by the scenarios. */
import type pg from 'pg'
import type { SluiceServer } from '../../src/server.js'

export function nowMs(): number {
  return performance.now()
}

export async function timed<T>(run: () => Promise<T>): Promise<{ ms: number; value: T }> {
  const start = nowMs()
  const value = await run()
  return { ms: nowMs() - start, value }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

/** Polls `done` every `everyMs` until it holds, or throws after `timeoutMs`. */
export async function waitUntil(what: string, done: () => boolean | Promise<boolean>, timeoutMs: number, everyMs = 5): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await done())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await sleep(everyMs)
  }
}

/** PostgreSQL's current WAL write position as a bigint. */
export async function currentWalLsn(db: pg.Pool | pg.Client): Promise<bigint> {
  const { rows } = await db.query<{ lsn: string }>(`SELECT (pg_current_wal_lsn() - '0/0')::text AS lsn`)
  return BigInt(rows[0]!.lsn)
}

/** Waits until Sluice has made durable everything up to `lsn`. */
export function waitForDurable(server: SluiceServer, lsn: bigint, timeoutMs: number): Promise<void> {
  return waitUntil(`durable LSN ${lsn}`, () => server.store.durableLsn >= lsn, timeoutMs, 2)
}

/**
 * Scale of a run: `BENCH_ROWS` (default 1,000,000) sets the snapshot size; other sizes scale
 * with it so that a quick run stays proportionate.
 */
export const FULL_ROWS = 1_000_000

export function benchRows(): number {
  const raw = process.env['BENCH_ROWS']
  if (raw === undefined || raw === '') return FULL_ROWS
  if (!/^[0-9]+$/.test(raw) || Number(raw) < 1000) throw new Error(`BENCH_ROWS: expected a whole number ≥ 1000, got ${JSON.stringify(raw)}`)
  return Number(raw)
}

export function scaled(full: number, minimum: number): number {
  return Math.max(minimum, Math.round((full * benchRows()) / FULL_ROWS))
}

export function formatCount(n: number): string {
  return n.toLocaleString('en-US')
}

export function progress(message: string): void {
  process.stdout.write(`  · ${message}\n`)
}
