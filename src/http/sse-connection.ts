/**
 * One Server-Sent Events response following one shape's log. It keeps only its position and
 * state; the log stays in storage. `pump()` writes batch after batch straight to the Node
 * response until it reaches the head, and stops when `write()` reports a full socket buffer,
 * resuming on `drain`, as undici's writer does. A slow reader therefore costs one batch of buffer,
 * never a queue: it reads from storage at its own pace.
 *
 * A batch is the slice `nextSlice` decides, as for a long-poll (`next-slice.ts`): a complete
 * chunk, or the open tail up to the head; it ends with an up-to-date only at the head, a
 * transaction boundary (I4). For a page's EventSource, the batch's last event carries
 * `id: <handle>:<offset reached>`.
 */
import type { ServerResponse } from 'node:http'
import { compareOffsets, formatOffset, type Offset } from '../protocol/offset.js'
import type { ActiveShape } from '../shapes/active-shape.js'
import { upToDateMessage } from './log-reader.js'
import { nextSlice, READ_MODE, viewLog } from './next-slice.js'
import type { ShapeLogReader } from './shape-log.js'
import { encodeEvents, formatEventId, KEEP_ALIVE, SSE_FRAMING, type SseFraming } from './sse-events.js'

export const SSE_STATE = {
  /** At the head: waits for the hub to wake it. */
  idle: 'idle',
  /** The socket buffer is full: waits for `drain`. */
  draining: 'draining',
  closed: 'closed',
} as const
export type SseState = (typeof SSE_STATE)[keyof typeof SSE_STATE]

interface Batch {
  readonly bytes: Buffer
  readonly end: Offset
  /** `end` as text, made once per batch: the key every connection that takes the batch reads next. */
  readonly endKey: string
  readonly upToDate: boolean
  /**
   * It ends at the head as it was read. Storage moves a head only between event-loop turns (a
   * commit is taken in by a callback of its own), so a connection that took it has nothing more
   * to read in this turn and need not look again.
   */
  readonly atHead: boolean
}

/**
 * Batches computed during one wake-up, by starting offset (as text) and then by variant (whether
 * the client knows it is live, and the framing): connections at the same position of the same
 * shape share one read and one encoding. A connection keeps its offset's text from the batch it
 * took, so looking up costs it no formatting and no string of its own: at 1,000 connections a
 * round is 1,000 of these lookups (docs/ARCHITECTURE.md I37).
 */
export type BatchCache = Map<string, (Batch | null | undefined)[]>

export class SseConnection {
  readonly shape: ActiveShape
  readonly openedAtMs: number
  readonly #res: ServerResponse
  /**
   * Where the body's bytes go. The response is close-delimited (`sse-route.ts`): its body bytes go
   * to the socket as they are, skipping the response's per-write cork and next-tick flush — a
   * wake-up writes one batch to every connection of a shape, and that loop is the cost of live
   * fan-out.
   */
  readonly #out: NodeJS.WritableStream & { readonly destroyed: boolean }
  readonly #store: ShapeLogReader
  #after: Offset
  /** `#after` as text, the batch cache's key. */
  #afterKey: string
  readonly #framing: SseFraming
  #state: SseState = SSE_STATE.idle
  /** The client knows it is live: no up-to-date is owed at the head. */
  #knowsLive: boolean

  constructor(shape: ActiveShape, after: Offset, framing: SseFraming, res: ServerResponse, store: ShapeLogReader, nowMs: number) {
    this.shape = shape
    this.#after = after
    this.#afterKey = formatOffset(after)
    this.#framing = framing
    // The client goes live over SSE from an up-to-date it already has; Electric then sends
    // nothing until a change. A page's EventSource learns it is live from a first up-to-date.
    this.#knowsLive = framing === SSE_FRAMING.electric
    this.#res = res
    this.#out = res.socket ?? res
    this.#store = store
    this.openedAtMs = nowMs
  }

  get state(): SseState {
    return this.#state
  }

  /** The offset of the last batch written. */
  get offset(): Offset {
    return this.#after
  }

  /** Writes every batch available now; returns when at the head, closed or the socket is full. */
  pump(cache?: BatchCache): void {
    while (this.#state === SSE_STATE.idle) {
      if (this.shape.dropped || this.#out.destroyed) {
        // The client reconnects; its stale handle then gets a 409 or a must-refetch event.
        this.end()
        return
      }
      let batch: Batch | undefined
      try {
        batch = this.#cached(cache)
      } catch {
        // The log went from storage (an HTTP worker hears of a drop after the owner made it,
        // docs/ARCHITECTURE.md I27): the client reconnects and gets its 409 then.
        this.end()
        return
      }
      if (!batch) return
      this.#after = batch.end
      this.#afterKey = batch.endKey
      if (batch.upToDate) this.#knowsLive = true
      if (!this.#write(batch.bytes) || batch.atHead) return
    }
  }

  /** A comment that keeps proxies and browsers from timing out an idle stream. */
  keepAlive(): void {
    if (this.#state === SSE_STATE.idle) this.#write(KEEP_ALIVE)
  }

  end(): void {
    if (this.#state === SSE_STATE.closed) return
    this.#state = SSE_STATE.closed
    if (!this.#res.destroyed) this.#res.end()
  }

  /** Marks the connection closed once the socket is gone (the hub calls this on `close`). */
  closed(): void {
    this.#state = SSE_STATE.closed
  }

  #write(bytes: Buffer): boolean {
    const out = this.#out
    if (out.write(bytes)) return true
    this.#state = SSE_STATE.draining
    out.once('drain', () => {
      if (this.#state !== SSE_STATE.draining) return
      this.#state = SSE_STATE.idle
      this.pump()
    })
    return false
  }

  #cached(cache: BatchCache | undefined): Batch | undefined {
    if (!cache) return this.#nextBatch()
    let variants = cache.get(this.#afterKey)
    if (!variants) cache.set(this.#afterKey, (variants = []))
    const variant = (this.#knowsLive ? 0 : 1) + (this.#framing === SSE_FRAMING.electric ? 0 : 2)
    let batch = variants[variant]
    if (batch === undefined) variants[variant] = batch = this.#nextBatch() ?? null
    return batch ?? undefined
  }

  #nextBatch(): Batch | undefined {
    const after = this.#after
    const view = viewLog(this.#store, this.shape, after)
    const next = nextSlice(view, READ_MODE.sse, this.#knowsLive)
    if ('wait' in next) return undefined
    const entries = next.hasEntries ? this.#store.read(this.shape.stored.id, after, next.end) : []
    if (next.upToDate) entries.push(upToDateMessage(next.upToDate.lastSeenLsn))
    return {
      bytes: encodeEvents(entries, this.#eventId(next.end)),
      end: next.end,
      endKey: formatOffset(next.end),
      upToDate: next.upToDate !== undefined,
      atHead: view.head !== undefined && compareOffsets(next.end, view.head) === 0,
    }
  }

  /** The `id:` of a batch that ends at `end`: only a page's EventSource resumes from one. */
  #eventId(end: Offset): string | undefined {
    return this.#framing === SSE_FRAMING.eventSource ? formatEventId(this.shape.stored.handle, end) : undefined
  }
}
