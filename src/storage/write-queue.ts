/**
 * The order of LMDB write transactions, and group commit (docs/ARCHITECTURE.md I6). LMDB runs
 * queued transactions one after another; replication batches that arrive while the previous
 * transaction is still queued join the next one. Each LMDB transaction copies every B-tree page it
 * touches, and with many shapes a replication transaction touches a page per shape: 2,000 batches
 * of 100 puts to random shapes took 2.3 s as one LMDB transaction each and 0.7 s ten to a
 * transaction. A batch is still all in one LMDB transaction or none.
 */
import type { RootDatabase } from 'lmdb'
import { withCommitError } from './log-databases.js'

/** Batches written in one LMDB transaction. */
interface Group<B> {
  readonly batches: B[]
  committed: Promise<void>
}

/** `R`: what writing a group returns, handed to `committed` once it is in storage. */
export class WriteQueue<B, R> {
  readonly #root: RootDatabase
  /** Writes a group's batches, inside its transaction. */
  readonly #writeGroup: (batches: readonly B[]) => R
  /** Runs once a group's transaction has committed, before any of its batches resolves. */
  readonly #afterGroup: (batches: readonly B[], written: R) => void
  /** The group waiting for an LMDB transaction that has not started: later batches join it. */
  #open: Group<B> | undefined

  constructor(root: RootDatabase, group: { write: (batches: readonly B[]) => R; committed: (batches: readonly B[], written: R) => void }) {
    this.#root = root
    this.#writeGroup = group.write
    this.#afterGroup = group.committed
  }

  /**
   * Queues a write transaction of its own. It closes the open group, so no later batch can be
   * written before it (say, a commit before the staging of its own first entries).
   */
  transaction<T>(write: () => T): Promise<T> {
    this.#open = undefined
    return this.#root.transaction(write).catch(async (error: unknown) => {
      throw await withCommitError(error)
    })
  }

  /** Adds `batch` to the open group, or opens one; resolves once its group has committed. */
  async commit(batch: B): Promise<void> {
    let group = this.#open
    if (group) group.batches.push(batch)
    else {
      const batches = [batch]
      const opened: Group<B> = { batches, committed: Promise.resolve() }
      let started = false
      const written = this.transaction(() => {
        // From here on, a new batch needs a new transaction.
        started = true
        if (this.#open === opened) this.#open = undefined
        return this.#writeGroup(batches)
      })
      opened.committed = written.then((result) => this.#afterGroup(batches, result))
      // Open to later batches only once queued: a transaction that could not be queued (the
      // store is closed) must fail every batch, not leave a group that never writes.
      if (!started) this.#open = opened
      group = opened
    }
    await group.committed
  }
}
