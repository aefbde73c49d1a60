/**
 * Durable shape logs in one LMDB environment. One write transaction per replication batch
 * holds every shape's appends, their chunk boundaries and the new LSN, so a crash keeps all of
 * a batch or none of it. Reads are ordered range scans over memory-mapped pages and never
 * re-encode: entries are stored as their wire JSON.
 *
 * Chunks close after the first entry that takes them past the size limit, inside a transaction
 * too (as Electric's do), so a transaction of any size is many bounded chunks; readers see a
 * boundary only once the transaction that holds it has committed. The snapshot is chunked apart
 * from the log: snapshot chunk `n` ends at offset `0_n` (Electric's numbering), and the log's
 * first chunk starts after the snapshot's last. Where the log's boundaries fall depends only on
 * its entries, so a replay after a crash puts them where they were.
 *
 * Commits become visible before they are flushed to disk (LMDB's overlapping sync): readers are
 * served at once, and the fsync runs beside the next transaction. A process crash loses nothing
 * committed (the pages are in the OS cache); an OS crash rolls back to the last flushed commit,
 * and the slot — acknowledged only up to `durableLsn` (docs/ARCHITECTURE.md I5) — replays
 * what was lost into the same offsets, chunks and bytes, since they derive from the WAL alone.
 *
 * This class keeps what storage must know between writes (heads readers may see, what queued
 * transactions hold, snapshots in progress) and decides what each write does. The LMDB
 * databases are `log-databases.ts`; reads `log-reads.ts`; puts and removals `log-writes.ts`; the
 * order of write transactions and group commit `write-queue.ts`; opening after a crash
 * `log-recovery.ts`.
 */
import type { TableInfo } from '../pg/introspect.js'
import type { Lsn } from '../pg/lsn.js'
import { compareOffsets, type Offset } from '../protocol/offset.js'
import type { ShapeDefinition } from '../shapes/shape-definition.js'
import { META, openLogDatabases, sizeBytes, type LogDatabases } from './log-databases.js'
import { LOG_START, offsetAfter } from './log-keys.js'
import { bytesSinceLastLogBoundary, LogReads } from './log-reads.js'
import { recoverLogs } from './log-recovery.js'
import { ShapeRecords } from './shape-records.js'
import { EntryWriter, putNewShape, putSnapshotEnd, putSnapshotRows, removeLogFrom, removeShape, type SnapshotWrite } from './log-writes.js'
import { SHAPE_STATUS, type LogBatch, type ShapeAppend, type SnapshotInfo, type StoredShape } from './stored-shape.js'
import { WriteQueue } from './write-queue.js'

export { SHAPE_STATUS, type LogBatch, type ShapeAppend, type ShapeStatus, type SnapshotInfo, type StoredShape } from './stored-shape.js'

export interface ShapeLogStoreOptions {
  readonly chunkBytes: number
  /** Hears how many log entries each committed batch added (for metrics). */
  readonly onCommitted?: (entries: number) => void
  /** The first failed write (disk full, I/O error): nothing is written after it (`write-queue.ts`), and
   * the owner stops the process; a restart replays from the durable LSN (docs/ARCHITECTURE.md I5). */
  readonly onFailure?: (error: unknown) => void
}

export class ShapeLogStore {
  readonly #dbs: LogDatabases
  readonly #records: ShapeRecords
  readonly #reads: LogReads
  readonly #entryWriter: EntryWriter
  /** Each shape's committed head: entries past it belong to a transaction still being written. */
  readonly #heads = new Map<number, Offset>()
  /**
   * What the write transactions queued so far hold: the shapes that exist and each one's head.
   * LMDB runs transaction callbacks one after another in queue order, so these maps, changed
   * only inside callbacks, answer inside a callback without a read (two reads per shape per
   * transaction were a quarter of the commit cost). After a failed write nothing is written
   * (`write-queue.ts`), so they are never read again.
   */
  readonly #written = {
    shapes: new Set<number>(),
    heads: new Map<number, Offset>(),
    /** Log bytes since the shape's last log boundary, staged entries included. */
    chunkBytes: new Map<number, number>(),
  }
  /** Shapes with entries staged for the transaction being received. */
  readonly #staged = new Set<number>()
  /** Shapes whose staged entries belong to a transaction that will be received again. */
  readonly #discarded = new Set<number>()
  readonly #chunkBytes: number
  readonly #onCommitted: ShapeLogStoreOptions['onCommitted']
  /** Progress of snapshots being written: the open chunk, its next block and its bytes, and the shape's record. */
  readonly #snapshotProgress = new Map<number, SnapshotWrite>()
  /** Each complete snapshot's last chunk (`StoredShape.lastSnapshotChunk`, kept at hand). */
  readonly #lastSnapshotChunk = new Map<number, number>()
  /** Every transaction whose commit ends at or before this LSN is committed (visible) in storage. */
  #committedLsn: Lsn
  /** … and flushed to disk. */
  #durableLsn: Lsn
  /** The LSN stored by the last batch written (inside transaction callbacks; see `#written`). */
  #writtenLsn: Lsn
  /** Commit groups return the heads they move, applied once they have committed. */
  readonly #writes: WriteQueue<LogBatch, Map<number, Offset>>
  /** Shapes removed at open because storage held them in an older layout (to log). */
  readonly droppedOldFormatShapes: number
  /** The records read at open, until `recoveredShapes()` hands them on. */
  #recovered: readonly StoredShape[] | undefined

  private constructor(dir: string, { chunkBytes, onCommitted, onFailure }: ShapeLogStoreOptions) {
    this.#onCommitted = onCommitted
    const dbs = openLogDatabases(dir)
    this.#dbs = dbs
    this.#reads = new LogReads(dbs.entries, dbs.boundaries, {
      head: (shapeId) => this.#heads.get(shapeId),
      lastSnapshotChunk: (shapeId) => this.#lastSnapshotChunk.get(shapeId),
    })
    this.#entryWriter = new EntryWriter(dbs, chunkBytes)
    this.#chunkBytes = chunkBytes
    const group = { write: (batches: readonly LogBatch[]) => this.#writeGroup(batches), committed: (batches: readonly LogBatch[], moved: Map<number, Offset>) => this.#groupCommitted(batches, moved) }
    this.#writes = new WriteQueue(dbs.root, dbs.meta, { ...group, failed: (error) => onFailure?.(error) })
    const recovered = recoverLogs(dbs)
    this.#records = new ShapeRecords(dbs)
    this.#committedLsn = recovered.committedLsn
    // A previous process's last commits may not have been flushed; nothing acknowledges this
    // LSN before a `durable` promise, which waits for the flush of the transactions made below.
    this.#durableLsn = this.#committedLsn
    this.#writtenLsn = this.#committedLsn
    this.droppedOldFormatShapes = recovered.droppedOldFormatShapes
    this.#recovered = recovered.records.map((record) => this.#records.decode(record))
    for (const shape of recovered.shapes) {
      if (shape.lastSnapshotChunk !== undefined) this.#lastSnapshotChunk.set(shape.id, shape.lastSnapshotChunk)
      if (shape.head) {
        this.#heads.set(shape.id, shape.head)
        this.#written.heads.set(shape.id, shape.head)
      }
      this.#written.chunkBytes.set(shape.id, shape.chunkBytes)
      this.#written.shapes.add(shape.id)
    }
  }

  static open(dir: string, options: ShapeLogStoreOptions): ShapeLogStore {
    return new ShapeLogStore(dir, options)
  }

  /** Bytes of LMDB pages in use by shape logs and their indexes. */
  sizeBytes(): number {
    return sizeBytes(this.#dbs)
  }

  /** Every transaction whose commit ends at or before this LSN is in storage and flushed to disk. */
  get durableLsn(): Lsn {
    return this.#durableLsn
  }

  /** Every transaction whose commit ends at or before this LSN is in storage (visible, maybe not yet flushed). */
  get committedLsn(): Lsn {
    return this.#committedLsn
  }

  /** Resolves when every commit so far is flushed to disk. */
  async flushed(): Promise<void> {
    await this.#dbs.root.flushed
  }

  /** `system_identifier` of the PostgreSQL cluster these logs came from; undefined for a new store. */
  get systemIdentifier(): string | undefined {
    return this.#dbs.meta.get(META.systemIdentifier)
  }

  /** Records the cluster a new store follows (nothing else changes). */
  async adoptSystemIdentifier(systemIdentifier: string): Promise<void> {
    await this.#writes.transaction(() => this.#dbs.meta.putSync(META.systemIdentifier, systemIdentifier))
  }

  /**
   * Starts over against another replication history (a new slot or another cluster): every
   * shape and its log go, and the durable LSN becomes `startLsn`, in one transaction. Shape ids
   * and the handle clock carry on, so no handle is ever issued twice.
   */
  async reset(systemIdentifier: string, startLsn: Lsn): Promise<void> {
    const ids = this.shapes().map((shape) => shape.id)
    await this.#writes.transaction(() => {
      for (const id of ids) this.#deleteShapeInTransaction(id)
      this.#dbs.meta.putSync(META.systemIdentifier, systemIdentifier)
      this.#dbs.meta.putSync(META.durableLsn, String(startLsn))
      this.#writtenLsn = startLsn
    })
    await this.flushed()
    this.#committedLsn = startLsn
    this.#durableLsn = startLsn
    this.#snapshotProgress.clear()
    this.#lastSnapshotChunk.clear()
    this.#heads.clear()
    this.#staged.clear()
    this.#discarded.clear()
  }

  shapes(): StoredShape[] {
    return this.#records.all()
  }

  /** The records stored at open, once (then `[]`): a start loads them without decoding each again. */
  recoveredShapes(): readonly StoredShape[] {
    const recovered = this.#recovered ?? []
    this.#recovered = undefined
    return recovered
  }

  getShape(id: number): StoredShape | undefined {
    return this.#records.get(id)
  }

  /** Registers a new shape with a never-before-issued handle, resolving once that is flushed (a handle from a
   * commit an OS crash rolls back could be issued again). `table`: as bound (checked at start). */
  async createShape(definition: ShapeDefinition, definitionKey: string, key?: readonly string[], table?: TableInfo): Promise<StoredShape> {
    const { shape, flushed } = await this.registerShape(definition, definitionKey, key, table)
    await flushed
    return shape
  }

  /** As `createShape`, but resolves once committed (its snapshot may be written), with `flushed`: on disk, when its handle may be given out. */
  async registerShape(definition: ShapeDefinition, definitionKey: string, key?: readonly string[], table?: TableInfo): Promise<{ readonly shape: StoredShape; readonly flushed: Promise<void> }> {
    const shape = await this.#writes.together(() => {
      const { shape, record } = putNewShape(this.#dbs, this.#records, definition, definitionKey, key, table)
      this.#written.shapes.add(shape.id)
      this.#written.chunkBytes.set(shape.id, 0)
      this.#snapshotProgress.set(shape.id, { chunk: 0, block: 0, bytes: 0, record })
      return shape
    })
    return { shape, flushed: this.flushed() }
  }

  /** Appends snapshot rows to the open snapshot chunk, closing it after the row that takes it past the size limit. */
  async appendSnapshotRows(shapeId: number, rows: readonly Buffer[]): Promise<void> {
    await this.#writes.together(() => this.#putSnapshotRows(shapeId, rows))
  }

  /** Inside a write transaction: see `appendSnapshotRows`. */
  #putSnapshotRows(shapeId: number, rows: readonly Buffer[]): SnapshotWrite | undefined {
    const progress = this.#snapshotProgress.get(shapeId)
    if (progress) this.#snapshotProgress.set(shapeId, putSnapshotRows(this.#dbs, shapeId, progress, rows, this.#chunkBytes))
    return this.#snapshotProgress.get(shapeId)
  }

  /**
   * Appends the snapshot's last `rows`, then ends it with its control message, the last entry of
   * its last chunk, and marks the shape ready, in one write. As in Electric, a request at or past
   * that chunk's end reads the log.
   */
  async finishSnapshot(shapeId: number, endMessage: Buffer, snapshot: SnapshotInfo, rows: readonly Buffer[] = []): Promise<void> {
    const moved = new Map<number, Offset>()
    let last: number | undefined
    await this.#writes.together(() => {
      const progress = this.#putSnapshotRows(shapeId, rows)
      if (!progress) return
      last = putSnapshotEnd(this.#dbs, shapeId, progress, endMessage)
      // The log may already have entries past it (written while the snapshot ran): heads only move forward.
      this.#advanceHead(moved, shapeId, { tx: 0n, op: last })
      // The record as stored at registration (its table by key): only this write changes it, so it need not be read back.
      this.#dbs.shapes.putSync(shapeId, { ...progress.record, status: SHAPE_STATUS.ready, snapshot, lastSnapshotChunk: last })
      this.#snapshotProgress.delete(shapeId)
    })
    if (last !== undefined && this.#written.shapes.has(shapeId)) this.#lastSnapshotChunk.set(shapeId, last)
    this.#applyHeads(moved)
  }

  /**
   * Commits a replication batch: every append, the chunk boundaries they close and the new LSN.
   * Resolves once readers see it, with `durable`, which resolves once it is flushed to disk (and
   * `durableLsn` has moved). Batches that arrive while the previous LMDB transaction is still
   * queued join the next one (group commit, `write-queue.ts`).
   */
  async commit(batch: LogBatch): Promise<{ readonly durable: Promise<void> }> {
    await this.#writes.commit(batch)
    const durable = this.flushed().then(() => {
      if (batch.durableLsn > this.#durableLsn) this.#durableLsn = batch.durableLsn
    })
    return { durable }
  }

  /** Inside a write transaction: a commit group's batches; returns the heads they move. */
  #writeGroup(batches: readonly LogBatch[]): Map<number, Offset> {
    const moved = new Map<number, Offset>()
    this.#dropDiscarded()
    for (const batch of batches) this.#writeBatch(batch, moved)
    return moved
  }

  /** A commit group is in storage: only now is it visible to readers. */
  #groupCommitted(batches: readonly LogBatch[], moved: Map<number, Offset>): void {
    this.#applyHeads(moved)
    let entries = 0
    for (const batch of batches) {
      if (batch.durableLsn > this.#committedLsn) this.#committedLsn = batch.durableLsn
      for (const append of batch.appends) entries += append.entries.length
    }
    this.#onCommitted?.(entries)
  }

  /** Inside a write transaction: one batch's entries, boundaries and LSN. */
  #writeBatch(batch: LogBatch, moved: Map<number, Offset>): void {
    for (const append of batch.appends) {
      if (append.entries.length === 0 || !this.#written.shapes.has(append.shapeId)) continue
      this.#putEntries(append)
      this.#staged.delete(append.shapeId)
      this.#advanceHead(moved, append.shapeId, { tx: append.tx, op: append.firstOp + append.entries.length - 1 })
    }
    if (batch.durableLsn > this.#writtenLsn) {
      this.#writtenLsn = batch.durableLsn
      this.#dbs.meta.putSync(META.durableLsn, String(batch.durableLsn))
    }
  }

  /** Inside a write transaction: an append's entries, counted into its shape's open chunk. */
  #putEntries(append: ShapeAppend): void {
    const bytes = this.#written.chunkBytes.get(append.shapeId) ?? 0
    this.#written.chunkBytes.set(append.shapeId, this.#entryWriter.put(append, bytes))
  }

  /**
   * Writes the first entries of a transaction that is still being received, so a huge
   * transaction never sits in memory whole. Readers do not see them: they stop at the head,
   * which only `commit` moves, with the transaction's last entries.
   */
  async stage(appends: readonly ShapeAppend[]): Promise<void> {
    await this.#writes.transaction(() => {
      this.#dropDiscarded()
      for (const append of appends) {
        if (append.entries.length === 0 || !this.#written.shapes.has(append.shapeId)) continue
        this.#putEntries(append)
        this.#staged.add(append.shapeId)
      }
    })
  }

  /**
   * Forgets what was staged for a transaction that will be received again (a reconnect): the
   * next write removes its entries and boundaries and counts the open chunk from the head again,
   * so the replay writes the same chunks.
   */
  discardStaged(): void {
    for (const id of this.#staged) this.#discarded.add(id)
    this.#staged.clear()
  }

  /** Inside a write transaction: see `discardStaged`. */
  #dropDiscarded(): void {
    for (const id of this.#discarded) {
      if (!this.#written.shapes.has(id)) continue
      const head = this.#written.heads.get(id)
      removeLogFrom(this.#dbs, id, head && head.tx > 0n ? offsetAfter(head) : LOG_START)
      this.#written.chunkBytes.set(id, bytesSinceLastLogBoundary(this.#dbs, id, head))
    }
    this.#discarded.clear()
  }

  /** Entries in `(after, upTo]`, one Buffer each, as stored (`LogReads`). */
  read(shapeId: number, after: Offset, upTo: Offset): Buffer[] {
    return this.#reads.read(shapeId, after, upTo)
  }

  /** Entries in `(after, upTo]` as comma-joinable parts. */
  readJoinable(shapeId: number, after: Offset, upTo: Offset): Buffer[] {
    return this.#reads.readJoinable(shapeId, after, upTo)
  }

  /** The end of the complete chunk right after `after` that readers may see, if there is one. */
  chunkEndAfter(shapeId: number, after: Offset): Offset | undefined {
    return this.#reads.chunkEndAfter(shapeId, after)
  }

  /** The offset of the shape's last committed entry (`undefined` before any). */
  head(shapeId: number): Offset | undefined {
    return this.#heads.get(shapeId)
  }

  /**
   * Inside a write transaction: queues the new head in `moved`, which the caller applies once
   * the transaction has committed — readers must not be told of a head before LMDB shows them
   * its entries. Heads only move forward. They are not stored: at open, the last entry is the
   * head once uncommitted entries are gone.
   */
  #advanceHead(moved: Map<number, Offset>, shapeId: number, offset: Offset): void {
    // The written head, not the readers' one: an earlier transaction may not have applied yet.
    const head = this.#written.heads.get(shapeId)
    if (head && compareOffsets(head, offset) >= 0) return
    moved.set(shapeId, offset)
    this.#written.heads.set(shapeId, offset)
  }

  #applyHeads(moved: Map<number, Offset>): void {
    for (const [shapeId, offset] of moved) {
      const head = this.#heads.get(shapeId)
      if (this.#written.shapes.has(shapeId) && (!head || compareOffsets(offset, head) > 0)) this.#heads.set(shapeId, offset)
    }
  }

  /** Removes a shape and its whole log. */
  async deleteShape(shapeId: number): Promise<void> {
    await this.#writes.transaction(() => this.#deleteShapeInTransaction(shapeId))
    this.#lastSnapshotChunk.delete(shapeId)
    this.#staged.delete(shapeId)
  }

  async close(): Promise<void> {
    await this.#dbs.root.close()
  }

  #deleteShapeInTransaction(shapeId: number): void {
    removeShape(this.#dbs, shapeId)
    // Its snapshot's later writes, queued already, find nothing to write (nor a record to put back).
    this.#snapshotProgress.delete(shapeId)
    this.#heads.delete(shapeId)
    this.#written.shapes.delete(shapeId)
    this.#written.heads.delete(shapeId)
    this.#written.chunkBytes.delete(shapeId)
  }
}
