/**
 * Is a replicated transaction already part of a snapshot? (docs/ARCHITECTURE.md I3.) pgoutput sends 32-bit xids while `pg_current_snapshot()` gives
 * 64-bit ones (epoch << 32 | xid); comparing modulo 2^32 relative to `xmax` is correct as long
 * as the transaction is within 2^31 xids of the snapshot, which PostgreSQL's wraparound
 * protection guarantees for transactions that are still being decoded.
 *
 * A snapshot shows a transaction once its backend has left the proc array, which is after its
 * commit record is in the WAL (and may be replicated): a backend waiting for a synchronous
 * standby, or not scheduled, holds a committed transaction "in progress" meanwhile. So
 * visibility order is not commit order, and an xid at or past `xmax` says nothing about the
 * commits after it. The WAL position read after the snapshot does: every commit the snapshot
 * shows lies before it.
 */
import type { Lsn } from '../pg/lsn.js'
import type { SnapshotInfo } from '../storage/shape-log-store.js'

export interface Visibility {
  readonly xmax32: number
  readonly inProgress: ReadonlySet<number>
  /** WAL insert position read after the snapshot; unknown for shapes stored before it was kept. */
  readonly lsn: Lsn | undefined
}

export function visibilityOf(snapshot: SnapshotInfo): Visibility {
  return {
    xmax32: Number(BigInt(snapshot.xmax) & 0xffff_ffffn),
    inProgress: new Set(snapshot.xip.map((x) => Number(BigInt(x) & 0xffff_ffffn))),
    lsn: snapshot.lsn === undefined ? undefined : (BigInt(snapshot.lsn) as Lsn),
  }
}

/** True when the transaction's backend had ended it before the snapshot was taken. */
export function isVisibleInSnapshot(xid: number, visibility: Visibility): boolean {
  return precedes(xid, visibility.xmax32) && !visibility.inProgress.has(xid)
}

/**
 * True when the transaction committed after the snapshot was taken: then so did every later one
 * in commit order. Without the snapshot's LSN (shapes stored before it was kept), an xid at or
 * past `xmax` stands in for it, as it always did.
 */
export function commitsAfterSnapshot(tx: { readonly xid: number; readonly commitLsn: Lsn }, visibility: Visibility): boolean {
  return visibility.lsn === undefined ? !precedes(tx.xid, visibility.xmax32) : tx.commitLsn >= visibility.lsn
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
