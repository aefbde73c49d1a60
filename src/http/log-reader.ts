/**
 * Decides what part of a shape's log answers a request (PROTOCOL: Offsets, Caching): a
 * complete chunk when one follows the offset, else the open tail up to the head with an
 * up-to-date, else — for live requests — waits for the next append.
 */
import { MustRefetchError } from '../errors.js'
import { CONTROL } from '../protocol/constants.js'
import { BEFORE_ALL, compareOffsets, SNAPSHOT_END, type Offset } from '../protocol/offset.js'
import type { ActiveShape } from '../shapes/active-shape.js'
import type { ShapeNotifier } from '../shapes/shape-notifier.js'
import type { ShapeLogStore } from '../storage/shape-log-store.js'
import { processedLsn } from './last-seen-lsn.js'

export interface LogSlice {
  /** Stored entries in order, as parts that join with commas (`ShapeLogStore.readJoinable`). */
  readonly parts: readonly Buffer[]
  /** The offset the client asks for next. */
  readonly end: Offset
  /** True when `end` is a closed chunk boundary (the response never changes). */
  readonly complete: boolean
  readonly upToDate: boolean
  /** The server-wide LSN processed, read in the same step as the head (`last-seen-lsn.ts`). */
  readonly processed: bigint
}

export interface LogReaderDeps {
  readonly store: ShapeLogStore
  readonly notifier: ShapeNotifier
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
  const deadline = Date.now() + wait.timeoutMs
  for (;;) {
    if (shape.dropped) throw new MustRefetchError(undefined, 'shape was dropped')
    const processed = processedLsn(store.committedLsn)
    const head = store.head(id)
    const chunkEnd = store.chunkEndAfter(id, after)
    if (chunkEnd) {
      // A live answer that reaches the head says so, or the client's next long-poll would wait
      // from there for a change that has already come. A non-live one keeps the chunk's bytes
      // the same forever; its client asks once more and gets the up-to-date then.
      const upToDate = wait.live && head !== undefined && compareOffsets(chunkEnd, head) === 0
      return { parts: store.readJoinable(id, after, chunkEnd), end: chunkEnd, complete: true, upToDate, processed }
    }
    if (!shape.snapshotComplete) {
      // Inside a snapshot that is still being written: wait for its next chunk.
      await notifier.wait(id, SNAPSHOT_POLL_MS, wait.signal)
      if (wait.signal?.aborted) throw new Error('request aborted')
      continue
    }
    if (head && compareOffsets(head, after) > 0 && compareOffsets(after, BEFORE_ALL) !== 0) {
      return { parts: store.readJoinable(id, after, head), end: head, complete: false, upToDate: true, processed }
    }
    const remaining = deadline - Date.now()
    if (!wait.live || remaining <= 0 || wait.signal?.aborted) {
      return { parts: [], end: after, complete: false, upToDate: true, processed }
    }
    await notifier.wait(id, remaining, wait.signal)
  }
}

/** The head of a complete shape, for `offset=now`: its last log entry, or its snapshot's end. */
export function headOf(store: ShapeLogStore, shape: ActiveShape): Offset {
  return store.head(shape.stored.id) ?? SNAPSHOT_END
}

/** The up-to-date control carrying `global_last_seen_lsn` (`last-seen-lsn.ts` says which). */
export function upToDateMessage(lastSeen: bigint): Buffer {
  return Buffer.from(JSON.stringify({ headers: { control: CONTROL.upToDate, global_last_seen_lsn: String(lastSeen) } }))
}
