/**
 * Is a replicated transaction already part of a snapshot? (DESIGN: "snapshot + log without
 * gaps or duplicates", step 3.) pgoutput sends 32-bit xids while `pg_current_snapshot()` gives
 * 64-bit ones (epoch << 32 | xid); comparing modulo 2^32 relative to `xmax` is correct as long
 * as the transaction is within 2^31 xids of the snapshot, which PostgreSQL's wraparound
 * protection guarantees for transactions that are still being decoded.
 */
import type { SnapshotInfo } from '../storage/shape-log-store.js'

export interface Visibility {
  readonly xmax32: number
  readonly inProgress: ReadonlySet<number>
}

export function visibilityOf(snapshot: SnapshotInfo): Visibility {
  return {
    xmax32: Number(BigInt(snapshot.xmax) & 0xffff_ffffn),
    inProgress: new Set(snapshot.xip.map((x) => Number(BigInt(x) & 0xffff_ffffn))),
  }
}

/** True when the transaction committed before the snapshot was taken. */
export function isVisibleInSnapshot(xid: number, visibility: Visibility): boolean {
  return precedes(xid, visibility.xmax32) && !visibility.inProgress.has(xid)
}

/** True when `xid` started at or after `xmax`: every later transaction is then invisible too. */
export function isAtOrAfterXmax(xid: number, visibility: Visibility): boolean {
  return !precedes(xid, visibility.xmax32)
}

function precedes(a: number, b: number): boolean {
  return ((a - b) | 0) < 0
}

/** Parses `pg_current_snapshot()::text` (`xmin:xmax:xip,xip`). */
export function parseSnapshotText(text: string): SnapshotInfo {
  const match = /^(\d+):(\d+):([\d,]*)$/.exec(text)
  if (!match) throw new Error(`Unexpected snapshot text ${JSON.stringify(text)}`)
  return { xmin: match[1]!, xmax: match[2]!, xip: match[3] ? match[3].split(',') : [] }
}
