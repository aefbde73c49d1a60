/**
 * Answers a long-poll or non-live request from a shape's log: the slice `nextSlice` decides,
 * waiting on the notifier while there is nothing to answer yet — inside a snapshot still being
 * written, or at the head of a live request until its timeout.
 */
import { RequestAbortedError } from '../errors.js'
import { CONTROL } from '../protocol/constants.js'
import { SNAPSHOT_END, type Offset } from '../protocol/offset.js'
import { droppedError, type ActiveShape } from '../shapes/active-shape.js'
import { nextSlice, READ_MODE, viewLog, WAIT, type ReadMode, type Slice, type Wait } from './next-slice.js'
import type { ShapeLogReader, ShapeLogWaiter } from './shape-log.js'

export interface LogSlice extends Slice {
  /** Stored entries in order, as parts that join with commas (`ShapeLogReader.readJoinable`). */
  readonly parts: readonly Buffer[]
}

export interface LogReaderDeps {
  readonly store: ShapeLogReader
  readonly notifier: ShapeLogWaiter
}

/** How long one wait for a snapshot's progress lasts before checking again. */
const SNAPSHOT_POLL_MS = 1_000

export async function readLog(
  deps: LogReaderDeps,
  shape: ActiveShape,
  after: Offset,
  wait: { readonly live: boolean; readonly timeoutMs: number; readonly signal?: AbortSignal },
): Promise<LogSlice> {
  const { store, notifier } = deps
  const id = shape.stored.id
  const mode = wait.live ? READ_MODE.longPoll : READ_MODE.nonLive
  const deadline = Date.now() + wait.timeoutMs
  for (;;) {
    if (shape.dropped) throw droppedError(shape)
    const waitAtHead = wait.live && Date.now() < deadline && !wait.signal?.aborted
    const next = sliceAt(store, shape, after, mode, waitAtHead)
    if (!('wait' in next)) return next
    if (next.wait === WAIT.snapshot) {
      await notifier.wait(id, SNAPSHOT_POLL_MS, wait.signal)
      if (wait.signal?.aborted) throw new RequestAbortedError()
      continue
    }
    await notifier.wait(id, deadline - Date.now(), wait.signal)
  }
}

/** The slice `nextSlice` decides after `after`, read from storage, or what it waits for. */
export function sliceAt(store: ShapeLogReader, shape: ActiveShape, after: Offset, mode: ReadMode, waitAtHead: boolean): LogSlice | { readonly wait: Wait } {
  const next = nextSlice(viewLog(store, shape, after), mode, waitAtHead)
  if ('wait' in next) return next
  return { ...next, parts: next.hasEntries ? store.readJoinable(shape.stored.id, after, next.end) : [] }
}

/** The head of a complete shape, for `offset=now`: its last log entry, or its snapshot's end. */
export function headOf(store: ShapeLogReader, shape: ActiveShape): Offset {
  return store.head(shape.stored.id) ?? SNAPSHOT_END
}

/** The up-to-date control carrying `global_last_seen_lsn` (`last-seen-lsn.ts` says which). */
export function upToDateMessage(lastSeen: bigint): Buffer {
  return Buffer.from(JSON.stringify({ headers: { control: CONTROL.upToDate, global_last_seen_lsn: String(lastSeen) } }))
}
