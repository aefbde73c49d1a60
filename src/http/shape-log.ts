/**
 * What http/ needs of the shape logs, and nothing more (docs/ARCHITECTURE.md: Modules): the
 * head, the complete chunk after a position, the LSN processed, a slice's entries, and a wait
 * for the next append. `storage/ShapeLogStore` reads and `shapes/ShapeNotifier` wakes in the
 * server; `test/support/memory-shape-log.ts` does both in memory, so HTTP behaviour is tested
 * through `app.request()` without a database (`test/unit/http-app.test.ts`).
 */
import type { Lsn } from '../pg/lsn.js'
import type { Offset } from '../protocol/offset.js'

export interface ShapeLogReader {
  /** Every transaction whose commit ends at or before it is readable in every shape (I16). */
  readonly committedLsn: Lsn
  /** The shape's last committed entry (`undefined` before any). */
  head(shapeId: number): Offset | undefined
  /** The end of the complete chunk right after `after` that readers may see, if there is one. */
  chunkEndAfter(shapeId: number, after: Offset): Offset | undefined
  /** Entries in `(after, upTo]`, one Buffer each (SSE events). */
  read(shapeId: number, after: Offset, upTo: Offset): Buffer[]
  /** Entries in `(after, upTo]` as parts that join with commas into the entries (a long-poll body). */
  readJoinable(shapeId: number, after: Offset, upTo: Offset): Buffer[]
}

export interface ShapeLogWaiter {
  /**
   * Resolves on the shape's next append (or snapshot progress), after `timeoutMs`, or when
   * `signal` aborts; `true` when woken by an append. Entries are readable before it resolves.
   */
  wait(shapeId: number, timeoutMs: number, signal?: AbortSignal): Promise<boolean>
}
