/**
 * The shape logs in memory, behind the same interface http/ reads storage through
 * (`src/http/shape-log.ts`), so HTTP behaviour is tested with `app.request()` and no database.
 * A test writes what storage would hold — entries at offsets, closed chunk boundaries, the
 * committed LSN — and wakes waiters as the router does once a batch is durable.
 */
import type { ShapeLogReader, ShapeLogWaiter } from '../../src/http/shape-log.js'
import { ZERO_LSN, type Lsn } from '../../src/pg/lsn.js'
import { compareOffsets, parseOffset, type Offset } from '../../src/protocol/offset.js'

interface Entry {
  readonly offset: Offset
  readonly bytes: Buffer
}

interface Log {
  readonly entries: Entry[]
  /** Closed chunk ends, ascending. */
  readonly boundaries: Offset[]
  head: Offset | undefined
}

/** The wire spelling keeps tests readable: `0_1` is the end of snapshot chunk 1. */
export function at(text: string): Offset {
  const offset = parseOffset(text)
  if (!offset) throw new Error(`bad offset ${text}`)
  return offset
}

export class MemoryShapeLog implements ShapeLogReader, ShapeLogWaiter {
  committedLsn: Lsn = ZERO_LSN
  readonly #logs = new Map<number, Log>()
  readonly #waiters = new Map<number, Set<() => void>>()

  /**
   * Makes `entries` readable at `offset` and moves the head there. A snapshot chunk's rows all
   * sit at its end `0_<n>`; a change at its own `<lsn>_<op>`.
   */
  append(shapeId: number, offset: string, ...entries: readonly unknown[]): void {
    const log = this.#log(shapeId)
    const at_ = at(offset)
    for (const entry of entries) log.entries.push({ offset: at_, bytes: Buffer.from(JSON.stringify(entry)) })
    log.head = at_
  }

  /** Closes a chunk at `end` (at or before the head): the URL for it never changes (I7). */
  closeChunk(shapeId: number, end: string): void {
    this.#log(shapeId).boundaries.push(at(end))
  }

  /** Wakes the shape's waiters, as the router does once a batch is durable. */
  notify(shapeId: number): void {
    for (const wake of [...(this.#waiters.get(shapeId) ?? [])]) wake()
  }

  /** Requests waiting on the shape now. */
  waiting(shapeId: number): number {
    return this.#waiters.get(shapeId)?.size ?? 0
  }

  head(shapeId: number): Offset | undefined {
    return this.#logs.get(shapeId)?.head
  }

  chunkEndAfter(shapeId: number, after: Offset): Offset | undefined {
    return this.#logs.get(shapeId)?.boundaries.find((end) => compareOffsets(end, after) > 0)
  }

  read(shapeId: number, after: Offset, upTo: Offset): Buffer[] {
    const entries = this.#logs.get(shapeId)?.entries ?? []
    return entries.filter(({ offset }) => compareOffsets(offset, after) > 0 && compareOffsets(offset, upTo) <= 0).map(({ bytes }) => bytes)
  }

  readJoinable(shapeId: number, after: Offset, upTo: Offset): Buffer[] {
    return this.read(shapeId, after, upTo)
  }

  wait(shapeId: number, timeoutMs: number, signal?: AbortSignal): Promise<boolean> {
    return new Promise((resolve) => {
      let waiters = this.#waiters.get(shapeId)
      if (!waiters) this.#waiters.set(shapeId, (waiters = new Set()))
      const done = (woken: boolean) => {
        clearTimeout(timer)
        signal?.removeEventListener('abort', aborted)
        waiters.delete(wake)
        resolve(woken)
      }
      const wake = () => done(true)
      const aborted = () => done(false)
      const timer = setTimeout(() => done(false), timeoutMs)
      waiters.add(wake)
      if (signal?.aborted) aborted()
      else signal?.addEventListener('abort', aborted, { once: true })
    })
  }

  #log(shapeId: number): Log {
    let log = this.#logs.get(shapeId)
    if (!log) this.#logs.set(shapeId, (log = { entries: [], boundaries: [], head: undefined }))
    return log
  }
}
