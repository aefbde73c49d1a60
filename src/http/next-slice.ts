/**
 * What the next read of a shape's log returns, for a long-poll request and an SSE batch alike
 * (docs/PROTOCOL.md: Offsets, Chunks; docs/ARCHITECTURE.md I4, I7, I16). `nextSlice` is pure: it takes what storage
 * says of the shape at the reader's position (`LogView`, read in one synchronous step by
 * `viewLog`) and the kind of read, and decides the slice — or that there is nothing to answer
 * yet. Reading the entries, waiting and timeouts stay with the callers (`log-reader.ts`,
 * `sse-connection.ts`).
 *
 * The rules, in order:
 * 1. A complete chunk follows the position: it is the slice, whole (I7).
 * 2. Inside a snapshot still being written: nothing until its next chunk closes, live or not.
 * 3. Entries past the position: the open tail up to the head, with an up-to-date (I4).
 * 4. Past what this process has taken in (a worker behind another): nothing, and no up-to-date.
 * 5. At the head: an empty up-to-date, or — for a reader that waits there — nothing yet.
 */
import { BEFORE_ALL, compareOffsets, type Offset } from '../protocol/offset.js'
import type { ActiveShape } from '../shapes/active-shape.js'
import { lastSeenLsn, processedLsn, resumeLsn } from './last-seen-lsn.js'
import type { ShapeLogReader } from './shape-log.js'

/** What storage says of one shape at one position. */
export interface LogView {
  /** The reader's position: the slice holds entries after it. */
  readonly after: Offset
  /** The shape's last committed entry (`undefined` before any). */
  readonly head: Offset | undefined
  /** The end of the complete chunk right after `after`, if there is one (`chunkEndAfter`). */
  readonly chunkEnd: Offset | undefined
  readonly snapshotComplete: boolean
  /** The server-wide LSN processed (`last-seen-lsn.ts`). */
  readonly processed: bigint
  /**
   * The reader's position is past every transaction this process has taken in: a worker whose
   * feed has not yet brought the transaction another worker's answer ended inside (I4).
   */
  readonly behind: boolean
}

/**
 * The view at `after`. One synchronous step: the processed LSN must be read with the head
 * (I16), and the chunk's end with the head it is compared to.
 */
export function viewLog(store: ShapeLogReader, shape: ActiveShape, after: Offset): LogView {
  const id = shape.stored.id
  return {
    after,
    head: store.head(id),
    chunkEnd: store.chunkEndAfter(id, after),
    snapshotComplete: shape.snapshotComplete,
    processed: processedLsn(store.committedLsn, shape.heldFrom),
    behind: after.tx > store.committedLsn,
  }
}

/** The kinds of read; the rules that differ between them are named where they apply. */
export const READ_MODE = {
  nonLive: 'non-live',
  longPoll: 'long-poll',
  sse: 'sse',
} as const
export type ReadMode = (typeof READ_MODE)[keyof typeof READ_MODE]

export interface Slice {
  /** The offset the client asks for next. The slice is the entries in `(after, end]`. */
  readonly end: Offset
  /** False when `end` is `after`: an answer with no entries. */
  readonly hasEntries: boolean
  /** True when `end` is a closed chunk boundary: the slice never changes (I7). */
  readonly complete: boolean
  /** Set when the slice ends with an up-to-date: its `global_last_seen_lsn` (I16). */
  readonly upToDate: { readonly lastSeenLsn: bigint } | undefined
}

export const WAIT = {
  /** Inside a snapshot still being written: nothing can be answered until its next chunk closes. */
  snapshot: 'snapshot',
  /** At the head: nothing new until the next append. */
  change: 'change',
} as const
export type Wait = (typeof WAIT)[keyof typeof WAIT]

export type NextSlice = Slice | { readonly wait: Wait }

/**
 * The next slice of the log after `view.after`. `waitAtHead`: at the head with nothing new,
 * wait for a change rather than answer an empty up-to-date — a live long-poll until its
 * timeout, an SSE connection whose client already knows it is live.
 */
export function nextSlice(view: LogView, mode: ReadMode, waitAtHead: boolean): NextSlice {
  const { after, head, chunkEnd } = view
  if (chunkEnd) {
    // A live read that reaches the head says so, or the client's next long-poll would wait
    // from there for a change that has already come. A non-live one keeps the chunk's bytes
    // the same forever (I7); its client asks once more and gets the up-to-date then.
    const atHead = mode !== READ_MODE.nonLive && head !== undefined && compareOffsets(chunkEnd, head) === 0
    return sliceTo(view, mode, chunkEnd, true, atHead)
  }
  if (!view.snapshotComplete) return { wait: WAIT.snapshot }
  if (head && compareOffsets(head, after) > 0) return sliceTo(view, mode, head, false, true)
  // This head is behind the reader, not the shape: the rest of the reader's transaction is still
  // to come, and an up-to-date now would show the client half of it (I4). A reader that waits
  // (SSE always does) waits for the feed that brings it; any other gets nothing and asks again.
  if (view.behind) return mode === READ_MODE.sse || waitAtHead ? { wait: WAIT.change } : { end: after, hasEntries: false, complete: false, upToDate: undefined }
  if (waitAtHead) return { wait: WAIT.change }
  return sliceTo(view, mode, after, false, true)
}

function sliceTo(view: LogView, mode: ReadMode, end: Offset, complete: boolean, atHead: boolean): Slice {
  const hasEntries = compareOffsets(end, view.after) !== 0
  // Up to date means the whole shape: never while its snapshot is still being written. Electric
  // sends none to a read from -1, whose answer keeps a long max-age; a page's EventSource
  // opening at -1 [sluice] needs one there to know it is live.
  const upToDate = atHead && view.snapshotComplete && (mode === READ_MODE.sse || compareOffsets(view.after, BEFORE_ALL) !== 0)
  if (!upToDate) return { end, hasEntries, complete, upToDate: undefined }
  // Electric's rule (`last-seen-lsn.ts`): every SSE batch, and a live long-poll answer with
  // changes, carry their own end; any other answer, the LSN processed as well.
  const own = mode === READ_MODE.sse || (mode === READ_MODE.longPoll && hasEntries)
  return { end, hasEntries, complete, upToDate: { lastSeenLsn: own ? resumeLsn(end) : lastSeenLsn(end, view.processed) } }
}
