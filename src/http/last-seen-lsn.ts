/**
 * `global_last_seen_lsn` of the up-to-date control (docs/PROTOCOL.md: Messages; docs/ARCHITECTURE.md I16), with
 * Electric's meaning: "this shape will receive nothing at or below this LSN". Electric's rules
 * (`api.ex`): a response that waited in vain, `offset=now` and a non-live response carry the LSN
 * the server has processed (non-live: at least the response's own end); a live response with
 * changes and every SSE batch carry the response's own end.
 *
 * What clients do with it, and why each value is exact:
 * - PGlite sync (`syncShapesToTables`) applies a transaction once every shape's last value has
 *   reached its LSN, and drops a later change at or below that value. Too low: a write to one
 *   table waits for an idle one. Too high: a change still to come is lost.
 * - The snapshot tracker retires a subset snapshot once the value reaches its `database_lsn`: it
 *   needs the same promise.
 * - Over SSE the client moves its offset to `<value>_0` and reads after it next time. Long-poll and
 *   non-live clients take their offset from `electric-offset`; the value never moves it.
 *
 * `processedLsn`: storage's `committedLsn` C says every transaction whose commit *ends* at or
 * before C is visible to readers in every shape (a batch's heads move before C does, and the
 * transactions held for a shape whose snapshot is running are appended before that snapshot
 * completes, while the shape serves no log). pgoutput sends transactions in commit order, and a
 * commit record starts at or after the previous one's end — possibly exactly there, as may one
 * after a keepalive's WAL end. So C − 1 is at or above every visible commit LSN and below every
 * commit LSN still to come. It is read in the same synchronous step as the shape's head, so the
 * response holds (or follows) every entry of the shape at or below it.
 *
 * `lastSeenLsn(end, processed)` = max(processed, `resumeLsn(end)`), for a response that ends at
 * the head: entries at or below it are all in the response or before it, and every later entry
 * of the shape has a commit LSN above both terms, hence an offset after `<value>_0` (nothing
 * skipped), while `<value>_0` is at or after `end` (nothing read twice). An LSN past the shape's
 * head is therefore safe even in SSE, though SSE batches, by Electric's rule, carry `resumeLsn`.
 */
import type { Lsn } from '../pg/lsn.js'
import type { Offset } from '../protocol/offset.js'

/**
 * The server-wide LSN processed, from storage's `committedLsn` (see above). `heldFrom`: the shape
 * waits for a move-in's rows (docs/ARCHITECTURE.md I25), and its transactions from this commit LSN
 * on are still to come: the value stays below it.
 */
export function processedLsn(committedLsn: Lsn, heldFrom?: Lsn): bigint {
  const processed = committedLsn > 0n ? committedLsn - 1n : 0n
  return heldFrom !== undefined && heldFrom <= processed ? heldFrom - 1n : processed
}

/**
 * The shape's own LSN at `end`. The SSE client resumes from `<lsn>_0`, which must be at or after
 * `end` (nothing is sent twice) and before every entry past `end` (nothing is skipped). The
 * smallest such LSN: `end.tx` when `end` is `<tx>_0`, else `end.tx + 1` — commit LSNs of later
 * transactions are far more than one byte apart. Taking `end.tx` for `<tx>_0` keeps an idle SSE
 * client that reconnects every minute from creeping forward one LSN each time.
 */
export function resumeLsn(end: Offset): bigint {
  if (end.tx <= 0n) return 1n
  return end.op === 0 ? end.tx : end.tx + 1n
}

/** The value for a response that ends at the head, `end`, with `processed` read alongside it. */
export function lastSeenLsn(end: Offset, processed: bigint): bigint {
  const own = resumeLsn(end)
  return processed > own ? processed : own
}
