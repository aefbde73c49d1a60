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
 */
import { open, type Database, type RootDatabase } from 'lmdb'
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import type { TableInfo } from '../pg/introspect.js'
import type { Lsn } from '../pg/lsn.js'
import { compareOffsets, INF_OP, type Offset } from '../protocol/offset.js'
import type { ShapeDefinition } from '../shapes/shape-definition.js'
import { makeShapeHandle, type ShapeHandle } from '../shapes/shape-handle.js'
import {
  isSnapshotBlockKey,
  KEY_BYTES,
  LOG_START,
  logKey,
  offsetAfter,
  offsetOfKey,
  shapeKeyRange,
  shapeReverseRange,
  snapshotBlockKey,
  snapshotChunkKey,
} from './log-keys.js'
import { BLOCK_BYTES, encodeBlock, joinedRows, SnapshotBlock } from './snapshot-block.js'

export const SHAPE_STATUS = { snapshotting: 'snapshotting', ready: 'ready' } as const
export type ShapeStatus = (typeof SHAPE_STATUS)[keyof typeof SHAPE_STATUS]

/** `pg_current_snapshot()` of a shape's snapshot, 64-bit xids as decimal text. */
export interface SnapshotInfo {
  readonly xmin: string
  readonly xmax: string
  readonly xip: readonly string[]
  /** `pg_current_wal_insert_lsn()` read after it, decimal; absent in shapes stored before it was kept. */
  readonly lsn?: string
}

export interface StoredShape {
  readonly id: number
  readonly handle: ShapeHandle
  readonly definition: ShapeDefinition
  readonly definitionKey: string
  readonly status: ShapeStatus
  readonly snapshot?: SnapshotInfo
  /** The snapshot's last chunk, once it is complete: its end `0_<n>` is where the log begins. */
  readonly lastSnapshotChunk?: number
  readonly createdAtMs: number
  /** The row identity's columns the log's keys are made of (absent in shapes stored before it was kept). */
  readonly key?: readonly string[]
  /**
   * The table as the shape was bound to it (its selected columns), so a start can tell whether
   * it changed while Sluice was down. Absent in shapes stored before it was kept.
   */
  readonly table?: TableInfo
}

/**
 * One transaction's entries for one shape: wire JSON at offsets `<tx>_<firstOp>`,
 * `<tx>_<firstOp + 1>`, … (a shape's ops in a transaction are consecutive).
 */
export interface ShapeAppend {
  readonly shapeId: number
  readonly tx: Lsn
  readonly firstOp: number
  readonly entries: readonly string[]
}

export interface LogBatch {
  /** Everything up to this LSN is processed once the batch is durable. */
  readonly durableLsn: Lsn
  readonly appends: readonly ShapeAppend[]
}

/** Commit batches written in one LMDB transaction. */
interface CommitGroup {
  readonly batches: LogBatch[]
  committed: Promise<void>
}

const META_DURABLE_LSN = 'durableLsn'
const META_HANDLE_CLOCK = 'handleClock'
const META_NEXT_SHAPE_ID = 'nextShapeId'
const META_SYSTEM_IDENTIFIER = 'systemIdentifier'
/**
 * Layout of the entries database; 2: snapshot rows in blocks (`snapshot-block.ts`); 3: snapshot
 * blocks keyed by chunk, and log chunks that may end inside a transaction (`log-keys.ts`).
 */
const META_FORMAT = 'format'
const FORMAT = '3'
const MARK = Buffer.of(1)

export class ShapeLogStore {
  readonly #root: RootDatabase
  readonly #entries: Database<Buffer, Buffer>
  readonly #boundaries: Database<Buffer, Buffer>
  readonly #shapes: Database<StoredShape, number>
  readonly #meta: Database<string, string>
  /** Each shape's committed head: entries past it belong to a transaction still being written. */
  readonly #heads = new Map<number, Offset>()
  /**
   * What the write transactions queued so far hold: the shapes that exist and each one's head.
   * LMDB runs transaction callbacks one after another in queue order, so these maps, changed
   * only inside callbacks, answer inside a callback without a read (two reads per shape per
   * transaction were a quarter of the commit cost). A failed write stops the process.
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
  readonly #onCommitted: ((entries: number) => void) | undefined
  /** Progress of snapshots being written: the open chunk, its next block and its bytes. */
  readonly #snapshotProgress = new Map<number, { chunk: number; block: number; bytes: number }>()
  /** Each complete snapshot's last chunk (`StoredShape.lastSnapshotChunk`, kept at hand). */
  readonly #lastSnapshotChunk = new Map<number, number>()
  /** Every transaction whose commit ends at or before this LSN is committed (visible) in storage. */
  #committedLsn: Lsn
  /** … and flushed to disk. */
  #durableLsn: Lsn
  /** The LSN stored by the last batch written (inside transaction callbacks; see `#written`). */
  #writtenLsn: Lsn
  /** Commit batches waiting for an LMDB transaction that has not started: later ones join it. */
  #openGroup: CommitGroup | undefined
  /** Reused by `#putEntries` (its own memory, not a slice of Node's shared pool). */
  readonly #scratch = { key: Buffer.allocUnsafeSlow(KEY_BYTES), value: Buffer.allocUnsafeSlow(64 * 1024) }
  /** Shapes removed at open because storage held them in an older layout (to log). */
  readonly droppedOldFormatShapes: number

  private constructor(dir: string, chunkBytes: number, onCommitted: ((entries: number) => void) | undefined) {
    this.#onCommitted = onCommitted
    mkdirSync(dir, { recursive: true })
    this.#root = open({ path: join(dir, 'shapes.lmdb'), maxDbs: 8, overlappingSync: true, compression: false })
    this.#entries = this.#root.openDB({ name: 'entries', keyEncoding: 'binary', encoding: 'binary' })
    this.#boundaries = this.#root.openDB({ name: 'boundaries', keyEncoding: 'binary', encoding: 'binary' })
    this.#shapes = this.#root.openDB({ name: 'shapes', keyEncoding: 'uint32', encoding: 'json' })
    this.#meta = this.#root.openDB({ name: 'meta', encoding: 'string' })
    this.#chunkBytes = chunkBytes
    this.#committedLsn = BigInt(this.#meta.get(META_DURABLE_LSN) ?? '0') as Lsn
    // A previous process's last commits may not have been flushed; nothing acknowledges this
    // LSN before a `durable` promise, which waits for the flush of the transactions made below.
    this.#durableLsn = this.#committedLsn
    this.#writtenLsn = this.#committedLsn
    // Shapes of an older layout cannot be read: they are dropped and built again on request.
    const shapesOfOldFormat = this.#meta.get(META_FORMAT) === FORMAT ? [] : this.shapes()
    this.droppedOldFormatShapes = shapesOfOldFormat.length
    this.#root.transactionSync(() => {
      for (const shape of shapesOfOldFormat) this.#deleteShapeInTransaction(shape.id)
      this.#meta.putSync(META_FORMAT, FORMAT)
    })
    // Entries and boundaries of a transaction whose commit never made it (a large one is
    // written as it arrives) go: it is replayed from the slot. Every committed entry's LSN is
    // below the LSN stored with it, which is the commit's end; a later transaction starts at or after it.
    const uncommittedFrom = this.#committedLsn > 0n ? this.#committedLsn : 1n
    this.#root.transactionSync(() => {
      for (const shape of this.shapes()) this.#removeLogFrom(shape.id, { tx: uncommittedFrom, op: 0 })
    })
    for (const shape of this.shapes()) {
      if (shape.lastSnapshotChunk !== undefined) this.#lastSnapshotChunk.set(shape.id, shape.lastSnapshotChunk)
      const head = this.#lastLogOffset(shape.id) ?? this.#snapshotEnd(shape.id)
      if (head) {
        this.#heads.set(shape.id, head)
        this.#written.heads.set(shape.id, head)
      }
      this.#written.chunkBytes.set(shape.id, this.#bytesSinceLastLogBoundary(shape.id, head))
      this.#written.shapes.add(shape.id)
    }
  }

  /** `onCommitted` hears how many log entries each durable batch added (for metrics). */
  static open(dir: string, options: { chunkBytes: number; onCommitted?: (entries: number) => void }): ShapeLogStore {
    return new ShapeLogStore(dir, options.chunkBytes, options.onCommitted)
  }

  /** Bytes of LMDB pages in use by shape logs and their indexes. */
  sizeBytes(): number {
    let bytes = 0
    for (const db of [this.#entries, this.#boundaries, this.#shapes, this.#meta]) {
      const stats = db.getStats() as { pageSize: number; treeBranchPageCount: number; treeLeafPageCount: number; overflowPages: number }
      bytes += stats.pageSize * (stats.treeBranchPageCount + stats.treeLeafPageCount + stats.overflowPages)
    }
    return bytes
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
    await this.#root.flushed
  }

  /** `system_identifier` of the PostgreSQL cluster these logs came from; undefined for a new store. */
  get systemIdentifier(): string | undefined {
    return this.#meta.get(META_SYSTEM_IDENTIFIER)
  }

  /** Records the cluster a new store follows (nothing else changes). */
  async adoptSystemIdentifier(systemIdentifier: string): Promise<void> {
    await this.#transaction(() => this.#meta.putSync(META_SYSTEM_IDENTIFIER, systemIdentifier))
  }

  /**
   * Starts over against another replication history (a new slot or another cluster): every
   * shape and its log go, and the durable LSN becomes `startLsn`, in one transaction. Shape ids
   * and the handle clock carry on, so no handle is ever issued twice.
   */
  async reset(systemIdentifier: string, startLsn: Lsn): Promise<void> {
    const ids = this.shapes().map((shape) => shape.id)
    await this.#transaction(() => {
      for (const id of ids) this.#deleteShapeInTransaction(id)
      this.#meta.putSync(META_SYSTEM_IDENTIFIER, systemIdentifier)
      this.#meta.putSync(META_DURABLE_LSN, String(startLsn))
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
    return [...this.#shapes.getRange()].map(({ value }) => value)
  }

  getShape(id: number): StoredShape | undefined {
    return this.#shapes.get(id)
  }

  /**
   * Registers a new shape with a never-before-issued handle. Resolves only once that is flushed:
   * a handle given out from a commit that an OS crash rolls back could be issued again.
   * `table` is the table as the shape is bound to it (kept for the check at start).
   */
  async createShape(definition: ShapeDefinition, definitionKey: string, key?: readonly string[], table?: TableInfo): Promise<StoredShape> {
    const { shape, flushed } = await this.registerShape(definition, definitionKey, key, table)
    await flushed
    return shape
  }

  /**
   * As `createShape`, but resolves once the shape is committed (its snapshot may be written), with
   * `flushed`, which resolves once it is on disk: its handle may be given out only then.
   */
  async registerShape(
    definition: ShapeDefinition,
    definitionKey: string,
    key?: readonly string[],
    table?: TableInfo,
  ): Promise<{ readonly shape: StoredShape; readonly flushed: Promise<void> }> {
    const shape = await this.#transaction(() => {
      const id = Number(this.#meta.get(META_NEXT_SHAPE_ID) ?? '1')
      // Microseconds, but strictly increasing even when the clock steps back or two shapes
      // are created in the same microsecond: handles are never reused.
      const lastClock = BigInt(this.#meta.get(META_HANDLE_CLOCK) ?? '0')
      const now = BigInt(Date.now()) * 1000n
      const clock = now > lastClock ? now : lastClock + 1n
      const shape: StoredShape = {
        id,
        handle: makeShapeHandle(definitionKey, clock),
        definition,
        definitionKey,
        status: SHAPE_STATUS.snapshotting,
        createdAtMs: Date.now(),
        ...(key ? { key } : {}),
        ...(table ? { table } : {}),
      }
      this.#meta.putSync(META_NEXT_SHAPE_ID, String(id + 1))
      this.#meta.putSync(META_HANDLE_CLOCK, String(clock))
      this.#shapes.putSync(id, shape)
      this.#written.shapes.add(id)
      this.#written.chunkBytes.set(id, 0)
      this.#snapshotProgress.set(id, { chunk: 0, block: 0, bytes: 0 })
      return shape
    })
    return { shape, flushed: this.flushed() }
  }

  /**
   * Appends snapshot rows to the open snapshot chunk, closing it after the row that takes it
   * past the size limit. Rows are stored in blocks (`snapshot-block.ts`) that end at chunk
   * boundaries and at the end of each call, so a block is never extended and never spans chunks.
   */
  async appendSnapshotRows(shapeId: number, rows: readonly Buffer[]): Promise<void> {
    await this.#transaction(() => {
      const progress = this.#snapshotProgress.get(shapeId)
      if (!progress) return
      let { chunk, block, bytes } = progress
      let pending: Buffer[] = []
      let pendingBytes = 0
      const closeBlock = () => {
        if (pending.length === 0) return
        this.#entries.putSync(snapshotBlockKey(shapeId, chunk, block++), encodeBlock(pending))
        pending = []
        pendingBytes = 0
      }
      for (const row of rows) {
        pending.push(row)
        pendingBytes += row.length + 1
        bytes += row.length + 1
        if (bytes >= this.#chunkBytes) {
          closeBlock()
          this.#boundaries.putSync(snapshotChunkKey(shapeId, chunk), MARK)
          chunk++
          block = 0
          bytes = 0
        } else if (pendingBytes >= BLOCK_BYTES) {
          closeBlock()
        }
      }
      closeBlock()
      this.#snapshotProgress.set(shapeId, { chunk, block, bytes })
    })
  }

  /**
   * Ends the snapshot with its control message, the last entry of its last chunk, and marks the
   * shape ready. As in Electric, a request at or past that chunk's end reads the log.
   */
  async finishSnapshot(shapeId: number, endMessage: Buffer, snapshot: SnapshotInfo): Promise<void> {
    const moved = new Map<number, Offset>()
    let last: number | undefined
    await this.#transaction(() => {
      const progress = this.#snapshotProgress.get(shapeId)
      if (!progress) return
      last = progress.chunk
      this.#entries.putSync(snapshotBlockKey(shapeId, last, progress.block), encodeBlock([endMessage]))
      this.#boundaries.putSync(snapshotChunkKey(shapeId, last), MARK)
      // The log may already have entries past it (written while the snapshot ran): heads only move forward.
      this.#advanceHead(moved, shapeId, { tx: 0n, op: last })
      const shape = this.#shapes.get(shapeId)
      if (shape) this.#shapes.putSync(shapeId, { ...shape, status: SHAPE_STATUS.ready, snapshot, lastSnapshotChunk: last })
      this.#snapshotProgress.delete(shapeId)
    })
    if (last !== undefined && this.#written.shapes.has(shapeId)) this.#lastSnapshotChunk.set(shapeId, last)
    this.#applyHeads(moved)
  }

  /**
   * Commits a replication batch: every append, the chunk boundaries they close and the new LSN.
   * Resolves once readers see it, with `durable`, which resolves once it is flushed to disk (and
   * `durableLsn` has moved).
   *
   * Batches that arrive while the previous LMDB transaction is still queued join the next one
   * (group commit). Each LMDB transaction copies every B-tree page it touches, and with many
   * shapes a replication transaction touches a page per shape: 2,000 batches of 100 puts to
   * random shapes took 2.3 s as one LMDB transaction each and 0.7 s ten to a transaction.
   * A batch is still all in one LMDB transaction or none.
   */
  async commit(batch: LogBatch): Promise<{ readonly durable: Promise<void> }> {
    let group = this.#openGroup
    if (group) group.batches.push(batch)
    else {
      const batches = [batch]
      const moved = new Map<number, Offset>()
      const opened: CommitGroup = { batches, committed: Promise.resolve() }
      let started = false
      const written = this.#transaction(() => {
        // From here on, a new batch needs a new transaction.
        started = true
        if (this.#openGroup === opened) this.#openGroup = undefined
        this.#dropDiscarded()
        for (const queued of batches) this.#writeBatch(queued, moved)
      })
      opened.committed = written.then(() => {
        // Only now is the group visible to readers.
        this.#applyHeads(moved)
        let entries = 0
        for (const queued of batches) {
          if (queued.durableLsn > this.#committedLsn) this.#committedLsn = queued.durableLsn
          for (const append of queued.appends) entries += append.entries.length
        }
        this.#onCommitted?.(entries)
      })
      // Open to later batches only once queued: a transaction that could not be queued (the
      // store is closed) must fail every batch, not leave a group that never writes.
      if (!started) this.#openGroup = opened
      group = opened
    }
    await group.committed
    const durable = this.flushed().then(() => {
      if (batch.durableLsn > this.#durableLsn) this.#durableLsn = batch.durableLsn
    })
    return { durable }
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
      this.#meta.putSync(META_DURABLE_LSN, String(batch.durableLsn))
    }
  }

  /**
   * Inside a write transaction: puts an append's entries, and a chunk boundary after each entry
   * that takes the shape's open log chunk past the limit; every entry counts with the comma that
   * joins it to the next. LMDB copies key and value during the put, so one key and one value
   * buffer serve every entry: nothing is allocated per entry.
   */
  #putEntries(append: ShapeAppend): void {
    const key = this.#scratch.key
    key.writeUInt32BE(append.shapeId, 0)
    key.writeBigUInt64BE(append.tx, 4)
    let bytes = this.#written.chunkBytes.get(append.shapeId) ?? 0
    for (let i = 0; i < append.entries.length; i++) {
      const json = append.entries[i]!
      // UTF-8 takes at most three bytes per UTF-16 code unit; a larger entry gets its own buffer
      // rather than growing the scratch one for good.
      const value = json.length * 3 <= this.#scratch.value.length ? this.#scratch.value.subarray(0, this.#scratch.value.write(json, 0, 'utf8')) : Buffer.from(json)
      key.writeUInt32BE(append.firstOp + i, 12)
      this.#entries.putSync(key, value)
      bytes += value.length + 1
      if (bytes >= this.#chunkBytes) {
        this.#boundaries.putSync(key, MARK)
        bytes = 0
      }
    }
    this.#written.chunkBytes.set(append.shapeId, bytes)
  }

  /**
   * Queues an LMDB write transaction. It closes the open commit group, so no later batch can be
   * written before it (say, a commit before the staging of its own first entries).
   */
  #transaction<T>(write: () => T): Promise<T> {
    this.#openGroup = undefined
    return this.#root.transaction(write).catch(async (error: unknown) => {
      throw await withCommitError(error)
    })
  }

  /**
   * Writes the first entries of a transaction that is still being received, so a huge
   * transaction never sits in memory whole. Readers do not see them: they stop at the head,
   * which only `commit` moves, with the transaction's last entries.
   */
  async stage(appends: readonly ShapeAppend[]): Promise<void> {
    await this.#transaction(() => {
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
      this.#removeLogFrom(id, head && head.tx > 0n ? offsetAfter(head) : LOG_START)
      this.#written.chunkBytes.set(id, this.#bytesSinceLastLogBoundary(id, head))
    }
    this.#discarded.clear()
  }

  /** Inside a write transaction: removes the shape's log entries and boundaries from `from` on. */
  #removeLogFrom(shapeId: number, from: Offset): void {
    const range = { start: logKey(shapeId, from), end: shapeKeyRange(shapeId).end }
    for (const key of this.#entries.getKeys(range)) this.#entries.removeSync(key)
    for (const key of this.#boundaries.getKeys(range)) this.#boundaries.removeSync(key)
  }

  /**
   * Entries in `(after, upTo]`, one Buffer each, as stored. Snapshot offsets count chunks: the
   * range holds whole snapshot chunks, and a snapshot offset at or past the last chunk (or
   * `0_inf`) is the log's start.
   */
  read(shapeId: number, after: Offset, upTo: Offset): Buffer[] {
    const values: Buffer[] = []
    this.#scan(shapeId, after, upTo, (block) => {
      const rows = new SnapshotBlock(block)
      for (let i = 0; i < rows.count; i++) values.push(rows.row(i))
    }, (value) => values.push(value))
    return values
  }

  /**
   * Entries in `(after, upTo]` as parts that, joined with commas, are the entries joined with
   * commas: a snapshot block comes as one slice, with no copy per row.
   */
  readJoinable(shapeId: number, after: Offset, upTo: Offset): Buffer[] {
    const parts: Buffer[] = []
    this.#scan(shapeId, after, upTo, (block) => parts.push(joinedRows(block)), (value) => parts.push(value))
    return parts
  }

  #scan(shapeId: number, after: Offset, upTo: Offset, onBlock: (block: Buffer) => void, onEntry: (value: Buffer) => void): void {
    const range = { start: this.#keyAfter(shapeId, after), end: this.#keyAfter(shapeId, upTo) }
    for (const { key, value } of this.#entries.getRange(range)) {
      if (isSnapshotBlockKey(key)) onBlock(value)
      else onEntry(value)
    }
  }

  /** The first key past everything at or before `offset`. */
  #keyAfter(shapeId: number, offset: Offset): Buffer {
    if (offset.tx < 0n) return snapshotChunkKey(shapeId, 0)
    if (offset.tx === 0n) return offset.op === INF_OP ? logKey(shapeId, LOG_START) : snapshotChunkKey(shapeId, offset.op + 1)
    return logKey(shapeId, offsetAfter(offset))
  }

  /**
   * The end of the complete chunk right after `after`, if there is one: the next snapshot
   * chunk, or the log's first boundary past `after` that readers may see (at or before the head).
   */
  chunkEndAfter(shapeId: number, after: Offset): Offset | undefined {
    const last = this.#lastSnapshotChunk.get(shapeId)
    const inSnapshot = after.tx < 0n || (after.tx === 0n && after.op !== INF_OP && (last === undefined || after.op < last))
    if (inSnapshot) {
      const next = after.tx < 0n ? 0 : after.op + 1
      return this.#boundaries.doesExist(snapshotChunkKey(shapeId, next)) ? { tx: 0n, op: next } : undefined
    }
    const head = this.#heads.get(shapeId)
    if (!head || head.tx === 0n || compareOffsets(after, head) >= 0) return undefined
    const start = after.tx === 0n ? LOG_START : offsetAfter(after)
    for (const key of this.#boundaries.getKeys({ start: logKey(shapeId, start), end: logKey(shapeId, offsetAfter(head)), limit: 1 })) {
      return offsetOfKey(key)
    }
    return undefined
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

  /** The offset of the shape's last stored log entry, if any. */
  #lastLogOffset(shapeId: number): Offset | undefined {
    for (const key of this.#entries.getKeys({ ...shapeReverseRange(shapeId), reverse: true, limit: 1 })) {
      const offset = offsetOfKey(key)
      return !isSnapshotBlockKey(key) && offset.tx > 0n ? offset : undefined
    }
    return undefined
  }

  /** `0_<last chunk>` of a complete snapshot. */
  #snapshotEnd(shapeId: number): Offset | undefined {
    const last = this.#lastSnapshotChunk.get(shapeId)
    return last === undefined ? undefined : { tx: 0n, op: last }
  }

  #applyHeads(moved: Map<number, Offset>): void {
    for (const [shapeId, offset] of moved) {
      const head = this.#heads.get(shapeId)
      if (this.#written.shapes.has(shapeId) && (!head || compareOffsets(offset, head) > 0)) this.#heads.set(shapeId, offset)
    }
  }

  /** Removes a shape and its whole log. */
  async deleteShape(shapeId: number): Promise<void> {
    await this.#transaction(() => this.#deleteShapeInTransaction(shapeId))
    this.#snapshotProgress.delete(shapeId)
    this.#lastSnapshotChunk.delete(shapeId)
    this.#staged.delete(shapeId)
  }

  async close(): Promise<void> {
    await this.#root.close()
  }

  #deleteShapeInTransaction(shapeId: number): void {
    const { start, end } = shapeKeyRange(shapeId)
    for (const key of this.#entries.getKeys({ start, end })) this.#entries.removeSync(key)
    for (const key of this.#boundaries.getKeys({ start, end })) this.#boundaries.removeSync(key)
    this.#shapes.removeSync(shapeId)
    this.#heads.delete(shapeId)
    this.#written.shapes.delete(shapeId)
    this.#written.heads.delete(shapeId)
    this.#written.chunkBytes.delete(shapeId)
  }

  /** Log bytes after the shape's last log boundary, up to `head`, each with its comma. */
  #bytesSinceLastLogBoundary(shapeId: number, head: Offset | undefined): number {
    if (!head || head.tx === 0n) return 0
    let start = LOG_START
    const upTo = logKey(shapeId, offsetAfter(head))
    // Reverse ranges include `start` and exclude `end`: from the head down to the log's first key.
    const beforeLog = logKey(shapeId, { tx: 0n, op: INF_OP })
    for (const key of this.#boundaries.getKeys({ start: logKey(shapeId, head), end: beforeLog, reverse: true, limit: 1 })) {
      start = offsetAfter(offsetOfKey(key))
    }
    let bytes = 0
    for (const { value } of this.#entries.getRange({ start: logKey(shapeId, start), end: upTo })) bytes += value.length + 1
    return bytes
  }
}

/**
 * lmdb rejects a failed commit with a generic error and the cause (ENOSPC, EIO) in a second
 * promise, `commitError`, which would otherwise end the process as an unhandled rejection
 * before the failure is logged: the error returned carries it as its `cause` (logs show both).
 */
async function withCommitError(error: unknown): Promise<unknown> {
  const pending = (error as { commitError?: Promise<unknown> } | undefined)?.commitError
  if (!(pending instanceof Promise)) return error
  const cause = await pending.then(() => undefined, (reason: unknown) => reason)
  if (!(cause instanceof Error)) return error
  return Object.assign(new Error('LMDB commit failed', { cause }), { code: (cause as NodeJS.ErrnoException).code })
}
