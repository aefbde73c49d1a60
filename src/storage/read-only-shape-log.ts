/**
 * Shape logs read by a process that does not write them: an HTTP worker opens the owner's LMDB
 * environment read-only (LMDB serves readers in many processes from the same pages). What
 * storage cannot say by itself — each shape's committed head and the LSN committed — the owner
 * sends over IPC once it is visible (`cluster/commit-feed.ts`); `apply` takes it in and renews
 * the read transaction, so the reads that follow see at least those commits
 * (docs/ARCHITECTURE.md I27).
 */
import type { Lsn } from '../pg/lsn.js'
import type { Offset } from '../protocol/offset.js'
import { openLogDatabases, sizeBytes, type LogDatabases } from './log-databases.js'
import { LogReads } from './log-reads.js'
import { ShapeRecords } from './shape-records.js'
import type { StoredShape } from './stored-shape.js'

/** A shape's position as the owner holds it. */
export interface ShapePosition {
  readonly head: Offset | undefined
  readonly snapshotComplete: boolean
}

/** Reads as `http/shape-log.ts` asks (`ShapeLogReader`), from another process's store. */
export class ReadOnlyShapeLog {
  readonly #dbs: LogDatabases
  readonly #records: ShapeRecords
  readonly #reads: LogReads
  readonly #positions = new Map<number, ShapePosition>()
  /** Each complete snapshot's last chunk, from its record (written with the snapshot's end). */
  readonly #lastSnapshotChunk = new Map<number, number>()
  readonly #gone: (shapeId: number) => Error
  #committedLsn = 0n as Lsn

  /**
   * `gone` makes the error a read throws when the shape's record is no longer in storage: the
   * owner deleted it, and its feed saying so has not arrived yet.
   */
  constructor(dir: string, gone: (shapeId: number) => Error) {
    this.#gone = gone
    this.#dbs = openLogDatabases(dir, { readOnly: true })
    // A worker killed by a signal left its LMDB read slot behind, pinning old pages: its
    // replacement, opening here, frees it.
    this.#dbs.root.readerCheck()
    this.#records = new ShapeRecords(this.#dbs)
    this.#reads = new LogReads(this.#dbs.entries, this.#dbs.boundaries, {
      head: (id) => this.#positions.get(id)?.head,
      lastSnapshotChunk: (id) => this.#lastSnapshotChunk.get(id),
    })
  }

  get committedLsn(): Lsn {
    return this.#committedLsn
  }

  /**
   * Takes in what the owner has made visible. One synchronous step, so a reader never sees a
   * head without the LSN committed with it (docs/ARCHITECTURE.md I16).
   */
  apply(committedLsn: Lsn, positions: Iterable<readonly [number, ShapePosition]>, gone: Iterable<number> = []): void {
    // lmdb-js keeps one read transaction per event-loop turn: one begun earlier in this turn
    // would not show the commits the feed announces.
    this.#dbs.root.resetReadTxn()
    if (committedLsn > this.#committedLsn) this.#committedLsn = committedLsn
    for (const [id, position] of positions) {
      this.#positions.set(id, position)
      if (!position.snapshotComplete || this.#lastSnapshotChunk.has(id)) continue
      const last = this.#dbs.shapes.get(id)?.lastSnapshotChunk
      if (last !== undefined) this.#lastSnapshotChunk.set(id, last)
    }
    for (const id of gone) {
      this.#positions.delete(id)
      this.#lastSnapshotChunk.delete(id)
    }
  }

  head(shapeId: number): Offset | undefined {
    return this.#positions.get(shapeId)?.head
  }

  sizeBytes(): number {
    return sizeBytes(this.#dbs)
  }

  getShape(id: number): StoredShape | undefined {
    return this.#records.get(id)
  }

  chunkEndAfter(shapeId: number, after: Offset): Offset | undefined {
    return this.#reads.chunkEndAfter(shapeId, after)
  }

  read(shapeId: number, after: Offset, upTo: Offset): Buffer[] {
    return this.#stillThere(shapeId, this.#reads.read(shapeId, after, upTo))
  }

  readJoinable(shapeId: number, after: Offset, upTo: Offset): Buffer[] {
    return this.#stillThere(shapeId, this.#reads.readJoinable(shapeId, after, upTo))
  }

  /**
   * Entries read for a shape the owner has just deleted would be fewer than its head promises.
   * The record is checked in the same read transaction as the scan, so it shows whether the
   * entries were all there.
   */
  #stillThere(shapeId: number, entries: Buffer[]): Buffer[] {
    if (!this.#dbs.shapes.doesExist(shapeId)) throw this.#gone(shapeId)
    return entries
  }

  async close(): Promise<void> {
    await this.#dbs.root.close()
  }
}
