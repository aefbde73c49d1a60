/**
 * The order of LMDB write transactions, group commit, and what happens after one fails
 * (docs/ARCHITECTURE.md I5, I6). LMDB runs queued transactions one after another; replication
 * batches that arrive while the previous transaction is still queued join the next one. Each LMDB
 * transaction copies every B-tree page it touches, and with many shapes a replication transaction
 * touches a page per shape: 2,000 batches of 100 puts to random shapes took 2.3 s as one LMDB
 * transaction each and 0.7 s ten to a transaction. A batch is still all in one LMDB transaction or none.
 *
 * A failed write is fatal. The store decides each write from what earlier ones wrote (heads, open
 * chunks, the LSN), so a write after a lost one would store a state that never was: say, an idle
 * commit's LSN past a transaction whose entries were lost, which a restart would then never
 * replay. LMDB runs a queued transaction as soon as the one before it ends, and JavaScript hears
 * of a failure later (on a full disk a small transaction can commit right after a large one
 * failed). So every transaction counts itself in `META.writes` and first checks the count the
 * previous one left: one that finds it short writes nothing. The first failure is reported once,
 * and it is the one with LMDB's cause: a transaction that found an earlier one lost is heard of
 * first, so it waits (a while) for every earlier one to be heard of (docs/ARCHITECTURE.md I35).
 *
 * New shapes' writes (records, snapshot rows and ends) also share transactions: those asked for
 * while one of theirs is queued last join it (`together`), so a pack of shapes whose snapshots
 * end at once costs one transaction, not one per shape (docs/ARCHITECTURE.md I30). No write
 * joins one queued before another transaction: a snapshot's end that joined a registration
 * queued before the commit of the transactions held for its shape (released to its log when the
 * snapshot started, their LSNs already stored) was stored first, and a crash between the two
 * left the shape ready without them for good.
 */
import type { Database } from 'lmdb'
import { META, withCommitError } from './log-databases.js'

/** Where the queue's transactions run: LMDB's root database (tests pass one that fails on cue). */
export interface WriteTransactions {
  transaction<T>(write: () => T): Promise<T>
}

export interface WriteQueueOptions<B, R> {
  /** Writes a group's batches, inside its transaction; returns what `committed` is handed. */
  readonly write: (batches: readonly B[]) => R
  /** Runs once a group's transaction has committed, before any of its batches resolves. */
  readonly committed: (batches: readonly B[], written: R) => void
  /** The first write that failed, with LMDB's cause (ENOSPC, EIO); every later one fails unwritten. */
  readonly failed: (error: unknown) => void
  /** How long a lost write waits for the earlier failure to be heard of before it is reported itself. */
  readonly lostWriteWaitMs?: number
}

const LOST_WRITE_WAIT_MS = 2_000

/** Batches written in one LMDB transaction. */
interface Group<B> {
  readonly batches: B[]
  committed: Promise<void>
}

export class WriteQueue<B, R> {
  readonly #root: WriteTransactions
  readonly #meta: Database<string, string>
  readonly #options: WriteQueueOptions<B, R>
  /** The group waiting for an LMDB transaction that has not started: later batches join it. */
  #open: Group<B> | undefined
  /** New shapes' writes waiting for a transaction that has not started and is queued last: later ones join it. */
  #together: (() => void)[] | undefined
  #togetherCommitted: Promise<void> | undefined
  /** `META.writes` as the last transaction that ran left it (inside transaction callbacks). */
  #writes: number
  #failureReported = false
  /** Settles once every transaction queued so far has been heard of. */
  #heard: Promise<void> = Promise.resolve()

  constructor(root: WriteTransactions, meta: Database<string, string>, options: WriteQueueOptions<B, R>) {
    this.#root = root
    this.#meta = meta
    this.#options = options
    this.#writes = storedWrites(meta)
  }

  /**
   * Queues a write transaction of its own. It closes the open group and the open `together`
   * writes, so no later write can be written before it (say, a commit before the staging of its
   * own first entries, or a snapshot's end before its shape's released transactions).
   */
  transaction<T>(write: () => T): Promise<T> {
    this.#open = undefined
    this.#together = undefined
    const earlier = this.#heard
    const outcome = this.#root.transaction(() => this.#afterCommitted(write)).catch(async (error: unknown) => {
      const failure = await withCommitError(error)
      // Not the failure itself: the lost transaction's own rejection, with LMDB's cause, is.
      // Bounded: a failure lmdb never reports must still stop the process.
      if (failure instanceof WriteLostError) await settledWithin(earlier, this.#options.lostWriteWaitMs ?? LOST_WRITE_WAIT_MS)
      if (!this.#failureReported) {
        this.#failureReported = true
        this.#options.failed(failure)
      }
      throw failure
    })
    this.#heard = Promise.all([earlier, outcome.catch(() => undefined)]).then(() => undefined)
    return outcome
  }

  /**
   * Runs `write` in the transaction of other `together` writes if it is queued last and has not
   * started, or queues one. Each write's outcome is its own; all commit at once.
   */
  together<T>(write: () => T): Promise<T> {
    let result: { value: T } | { error: unknown } | undefined
    const run = () => {
      try {
        result = { value: write() }
      } catch (error) {
        result = { error }
      }
    }
    let writes = this.#together
    let committed: Promise<void>
    if (writes) {
      writes.push(run)
      committed = this.#togetherCommitted!
    } else {
      const opened: (() => void)[] = [run]
      writes = opened
      let started = false
      committed = this.transaction(() => {
        started = true
        if (this.#together === opened) this.#together = undefined
        for (const each of opened) each()
      })
      // As in `commit`: open to later writes only once queued.
      if (!started) {
        this.#together = opened
        this.#togetherCommitted = committed
      }
    }
    return committed.then(() => {
      if (!result) throw new Error('a storage write was not run')
      if ('error' in result) throw result.error
      return result.value
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
        return this.#options.write(batches)
      })
      opened.committed = written.then((result) => this.#options.committed(batches, result))
      // Open to later batches only once queued: a transaction that could not be queued (the
      // store is closed) must fail every batch, not leave a group that never writes.
      if (!started) this.#open = opened
      group = opened
    }
    await group.committed
  }

  /** Inside a write transaction: runs `write` only if every earlier transaction committed. */
  #afterCommitted<T>(write: () => T): T {
    const stored = storedWrites(this.#meta)
    if (stored !== this.#writes) throw new WriteLostError(this.#writes, stored)
    this.#writes++
    this.#meta.putSync(META.writes, String(this.#writes))
    return write()
  }
}

/**
 * A transaction found fewer committed ones than this process ran. Reported only when no earlier
 * transaction's failure was (then something other than this process wrote `META.writes`).
 */
export class WriteLostError extends Error {
  constructor(counted: number, stored: number) {
    super(`LMDB write lost: ${counted - stored} earlier write transaction(s) did not commit (META.writes ${stored}, counted ${counted}), so this one writes nothing`)
  }
}

function settledWithin(promise: Promise<void>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined
  const elapsed = new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)))
  return Promise.race([promise, elapsed]).finally(() => clearTimeout(timer))
}

function storedWrites(meta: Database<string, string>): number {
  return Number(meta.get(META.writes) ?? '0')
}
