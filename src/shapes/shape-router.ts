/**
 * The replication sink: routes each committed transaction to the shapes on its tables, merges
 * it with their snapshots (skip what a snapshot already holds), encodes each change once and
 * commits one storage batch per transaction. Acknowledges to PostgreSQL only after the batch
 * is durable (DESIGN invariant: ack ≤ durable).
 */
import type { Logger } from '../log.js'
import { maxLsn, type Lsn } from '../pg/lsn.js'
import type { ReplicationSink } from '../replication/replication-stream.js'
import type { Change, Transaction } from '../replication/transaction.js'
import type { ShapeAppend, ShapeLogStore, LogEntry } from '../storage/shape-log-store.js'
import { MERGE_PHASE, type ActiveShape } from './active-shape.js'
import { encodeChange, type ChangeMessage } from './change-encoder.js'
import { relationPrefix } from './row-key.js'
import type { ShapeNotifier } from './shape-notifier.js'
import { isAtOrAfterXmax, isVisibleInSnapshot } from './xid-visibility.js'

export interface ShapeRouterOptions {
  readonly store: ShapeLogStore
  readonly notifier: ShapeNotifier
  readonly acknowledge: (durable: Lsn) => void
  /** A shape that can no longer be kept correct (e.g. its table was truncated). */
  readonly invalidate: (shape: ActiveShape, reason: string) => void
  readonly log: Logger
}

/** Commits in flight before the stream is made to wait. */
const MAX_IN_FLIGHT = 64
const IDLE_COMMIT_EVERY_MS = 1_000

export class ShapeRouter implements ReplicationSink {
  readonly #options: ShapeRouterOptions
  readonly #byTable = new Map<string, Set<ActiveShape>>()
  /** End LSN of the last transaction taken in; replays before it are skipped. */
  #accepted: Lsn
  #inFlight = 0
  #lastCommit: Promise<void> = Promise.resolve()
  #lastIdleCommitMs = 0
  #idlePending: Lsn | undefined
  #idleTimer: NodeJS.Timeout | undefined

  constructor(options: ShapeRouterOptions) {
    this.#options = options
    this.#accepted = options.store.durableLsn
  }

  add(shape: ActiveShape): void {
    const key = tableKey(shape.table.table.schema, shape.table.table.name)
    let set = this.#byTable.get(key)
    if (!set) this.#byTable.set(key, (set = new Set()))
    set.add(shape)
  }

  remove(shape: ActiveShape): void {
    const key = tableKey(shape.table.table.schema, shape.table.table.name)
    this.#byTable.get(key)?.delete(shape)
  }

  /** The snapshot's visibility is known: release the transactions held back for it. */
  snapshotStarted(shape: ActiveShape): void {
    shape.phase = MERGE_PHASE.filtering
    const held = shape.held.splice(0)
    for (const tx of held) {
      const append = this.#appendFor(shape, tx)
      if (append) this.#commit({ durableLsn: 0n as Lsn, appends: [append] }, [shape.stored.id])
    }
  }

  async onTransaction(tx: Transaction): Promise<void> {
    if (tx.commitLsn < this.#accepted) return
    this.#accepted = maxLsn(this.#accepted, tx.endLsn)
    const appends: ShapeAppend[] = []
    const touched: number[] = []
    for (const shape of this.#shapesTouchedBy(tx)) {
      if (shape.phase === MERGE_PHASE.awaitingSnapshot) {
        shape.held.push(tx)
        continue
      }
      const append = this.#appendFor(shape, tx)
      if (append) {
        appends.push(append)
        touched.push(shape.stored.id)
      }
    }
    this.#commit({ durableLsn: tx.endLsn, appends }, touched)
    if (this.#inFlight >= MAX_IN_FLIGHT) await this.#lastCommit
  }

  onIdle(walEnd: Lsn): void {
    if (walEnd <= this.#accepted && walEnd <= this.#options.store.durableLsn) return
    const waitMs = IDLE_COMMIT_EVERY_MS - (Date.now() - this.#lastIdleCommitMs)
    if (waitMs > 0) {
      // Too soon for another idle commit, but do not drop this position: PostgreSQL sends the
      // next keepalive only after we acknowledge (or after wal_sender_timeout / 2), so the
      // durable LSN — and the slot — would otherwise stall behind WAL that holds no changes.
      this.#idlePending = walEnd
      this.#idleTimer ??= setTimeout(() => {
        this.#idleTimer = undefined
        const pending = this.#idlePending
        this.#idlePending = undefined
        if (pending !== undefined) this.onIdle(pending)
      }, waitMs)
      return
    }
    this.#lastIdleCommitMs = Date.now()
    this.#accepted = maxLsn(this.#accepted, walEnd)
    this.#commit({ durableLsn: walEnd, appends: [] }, [])
  }

  /** Storage started over at `durable` (a new slot or cluster): forget what was accepted. */
  reset(durable: Lsn): void {
    this.#cancelIdleCommit()
    this.#accepted = durable
  }

  /** No more commits after this (the stream has stopped); resolves when the last one is durable. */
  stop(): Promise<void> {
    this.#cancelIdleCommit()
    return this.#lastCommit
  }

  #cancelIdleCommit(): void {
    if (this.#idleTimer) clearTimeout(this.#idleTimer)
    this.#idleTimer = undefined
    this.#idlePending = undefined
  }

  /** Resolves when everything handed to storage so far is durable. */
  flushed(): Promise<void> {
    return this.#lastCommit
  }

  #commit(batch: { durableLsn: Lsn; appends: ShapeAppend[] }, touched: number[]): void {
    this.#inFlight++
    const { store, notifier, acknowledge } = this.#options
    this.#lastCommit = store.commit(batch).then(() => {
      this.#inFlight--
      for (const id of touched) notifier.notify(id)
      if (batch.durableLsn > 0n) acknowledge(store.durableLsn)
    })
  }

  *#shapesTouchedBy(tx: Transaction): Iterable<ActiveShape> {
    const seen = new Set<ActiveShape>()
    for (const change of tx.changes) {
      const relations = change.kind === 'truncate' ? change.relations : [change.relation]
      for (const relation of relations) {
        for (const shape of this.#byTable.get(tableKey(relation.schema, relation.name)) ?? []) {
          if (!seen.has(shape)) {
            seen.add(shape)
            yield shape
          }
        }
      }
    }
  }

  /** The shape's entries for one transaction, or nothing when the snapshot already has it. */
  #appendFor(shape: ActiveShape, tx: Transaction): ShapeAppend | undefined {
    if (shape.dropped) return undefined
    if (shape.phase === MERGE_PHASE.filtering && shape.visibility) {
      if (isVisibleInSnapshot(tx.xid, shape.visibility)) return undefined
      if (isAtOrAfterXmax(tx.xid, shape.visibility)) shape.phase = MERGE_PHASE.appendAll
    }
    const { schema, name } = shape.table.table
    const context = {
      keyPrefix: relationPrefix(shape.table.table),
      relationName: [schema, name] as const,
      primaryKey: shape.table.primaryKey,
      replica: shape.stored.definition.replica,
      lsn: String(tx.commitLsn),
      xid: tx.xid,
    }
    const messages: ChangeMessage[] = []
    for (let position = 0; position < tx.changes.length; position++) {
      const change: Change = tx.changes[position]!
      if (change.kind === 'truncate') {
        if (change.relations.some((r) => r.schema === schema && r.name === name)) {
          this.#options.invalidate(shape, 'table truncated')
          return undefined
        }
        continue
      }
      if (change.relation.schema !== schema || change.relation.name !== name) continue
      messages.push(...encodeChange(context, change, position))
    }
    if (messages.length === 0) return undefined
    messages[messages.length - 1]!.headers.last = true
    const entries: LogEntry[] = messages.map((message, op) => ({
      offset: { tx: tx.commitLsn, op },
      bytes: Buffer.from(JSON.stringify(message)),
    }))
    return { shapeId: shape.stored.id, entries }
  }
}

function tableKey(schema: string, name: string): string {
  return `${schema}\u0000${name}`
}
