/**
 * Log offsets `<tx>_<op>`. For replicated changes `tx` is the commit LSN and `op` the change's
 * index within the shape's part of that transaction. The snapshot uses `tx = 0` as Electric
 * does: `0_<n>` is the end of snapshot chunk `n`, and `0_inf` (or any `0_<n>` at or past the
 * last chunk) asks for the log from its start. `-1` sorts before everything.
 */
export interface Offset {
  readonly tx: bigint
  readonly op: number
}

/** The wire form, as the client types it. */
export type OffsetText = '-1' | `${bigint}_${number}` | `${bigint}_inf`

/** `op` of `0_inf`, the end of every snapshot. Larger than any real op index. */
export const INF_OP = 0xffff_ffff

export const BEFORE_ALL: Offset = { tx: -1n, op: 0 }
export const SNAPSHOT_START: Offset = { tx: 0n, op: 0 }
export const SNAPSHOT_END: Offset = { tx: 0n, op: INF_OP }

const OFFSET_TEXT = /^(0|[1-9][0-9]{0,19})_(0|[1-9][0-9]{0,9}|inf)$/
const MAX_TX = 0xffff_ffff_ffff_ffffn

/** Parses `-1` or `<tx>_<op>`; `undefined` for anything else (including `now`, handled by the caller). */
export function parseOffset(text: string): Offset | undefined {
  if (text === '-1') return BEFORE_ALL
  const match = OFFSET_TEXT.exec(text)
  if (!match) return undefined
  const tx = BigInt(match[1]!)
  const op = match[2] === 'inf' ? INF_OP : Number(match[2])
  // The last possible tx with op `inf` has no successor key; nothing real is ever there.
  if (tx > MAX_TX || op > INF_OP || (tx === MAX_TX && op === INF_OP)) return undefined
  return { tx, op }
}

export function formatOffset(offset: Offset): OffsetText {
  if (offset.tx < 0n) return '-1'
  if (offset.op === INF_OP) return `${offset.tx}_inf`
  return `${offset.tx}_${offset.op}`
}

export function compareOffsets(a: Offset, b: Offset): number {
  if (a.tx !== b.tx) return a.tx < b.tx ? -1 : 1
  return a.op - b.op
}

export function isSnapshotOffset(offset: Offset): boolean {
  return offset.tx <= 0n
}
