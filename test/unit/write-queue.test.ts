/**
 * The write queue after a failed LMDB commit (`storage/write-queue.ts`, docs/ARCHITECTURE.md I5).
 * LMDB runs the next queued transaction as soon as one ends, and JavaScript hears that one failed
 * only later. The soak once saw rows missing after a restart that followed an EIO "Commit failed":
 * a transaction that runs in that window must not store an LSN past the lost batch, or the restart
 * resumes past it. The fake below is real LMDB whose chosen transaction is rolled back and whose
 * failure is reported only when the test says so.
 */
import { ABORT, type RootDatabase } from 'lmdb'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { openLogDatabases, type LogDatabases } from '../../src/storage/log-databases.js'
import { WriteQueue, type WriteTransactions } from '../../src/storage/write-queue.js'
import { drained, waitFor } from '../support/wait.js'

/** LMDB whose next transaction fails to commit: its writes are rolled back, its failure reported on `report()`. */
function failingOnCue(root: RootDatabase) {
  let failNext = false
  let report: (() => void) | undefined
  let ended = 0
  const counted = <T>(transaction: Promise<T>): Promise<T> => {
    void transaction.then(
      () => ended++,
      () => ended++,
    )
    return transaction
  }
  const transactions: WriteTransactions = {
    transaction<T>(write: () => T): Promise<T> {
      if (!failNext) return counted(root.transaction(write))
      failNext = false
      return root
        .childTransaction(() => {
          write()
          return ABORT
        })
        .then(() => new Promise<T>((_, reject) => (report = () => reject(lmdbCommitFailure()))))
    },
  }
  return {
    transactions,
    failNext: () => void (failNext = true),
    /** The failing transaction has run; its failure waits for `report()`. */
    ran: () => report !== undefined,
    report: () => report!(),
    /** Transactions that LMDB has run and that did not fail on cue. */
    ended: () => ended,
  }
}

/** What lmdb rejects a failed commit with: the cause comes in a promise of its own. */
function lmdbCommitFailure(): Error {
  const cause = Object.assign(new Error('Input/output error'), { code: 'EIO' })
  return Object.assign(new Error('Commit failed (see commitError for details)'), { commitError: Promise.reject(cause) })
}

let dir: string
let dbs: LogDatabases

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sluice-unit-write-queue-'))
  dbs = openLogDatabases(dir)
})

afterEach(async () => {
  await dbs.root.close()
  await rm(dir, { recursive: true, force: true })
})

/** A queue of batches that are LSNs, storing the last one as a replication group does. */
function lsnQueue(transactions: WriteTransactions) {
  const written: bigint[] = []
  const committed: bigint[] = []
  const failures: unknown[] = []
  const queue = new WriteQueue<bigint, bigint>(transactions, dbs.meta, {
    write: (lsns) => {
      written.push(...lsns)
      const last = lsns.at(-1)!
      dbs.meta.putSync('lsn', String(last))
      return last
    },
    committed: (_, last) => void committed.push(last),
    failed: (error) => void failures.push(error),
  })
  return { queue, written, committed, failures }
}

describe('WriteQueue after a failed commit', () => {
  it('writes nothing in a transaction LMDB runs before the failure is heard of, and reports the failure once', async () => {
    const lmdb = failingOnCue(dbs.root)
    const { queue, written, committed, failures } = lsnQueue(lmdb.transactions)
    await queue.commit(100n)

    lmdb.failNext()
    const lost = queue.commit(200n)
    // Its transaction has run: a later batch needs a transaction of its own.
    await waitFor(() => expect(written).toContain(200n))
    // An idle commit, say: LMDB runs it while the failure of the one before is not yet known.
    const endedBefore = lmdb.ended()
    const behind = queue.commit(300n).then(() => undefined, (error: unknown) => error as Error)
    await waitFor(() => expect(lmdb.ended()).toBe(endedBefore + 1))
    await drained()
    // Heard of first, but not the failure to report: that is the lost one's, with LMDB's cause (I35).
    expect(failures).toEqual([])
    lmdb.report()
    const failure = await lost.then(() => undefined, (error: unknown) => error as Error & { cause: Error })
    expect(failure?.message).toBe('LMDB commit failed')
    expect(failure?.cause.message).toBe('Input/output error')
    expect((await behind)?.message).toMatch(/^LMDB write lost: 1 earlier write transaction\(s\) did not commit \(META.writes (\d+), counted (\d+)\)/)

    expect(written).toEqual([100n, 200n])
    expect(committed).toEqual([100n])
    // What a restart resumes from: 200 is replayed.
    expect(dbs.meta.get('lsn')).toBe('100')
    expect(failures).toEqual([failure])

    // Nothing is written after a failure, not even a transaction queued long after it.
    let ran = false
    await expect(queue.transaction(() => (ran = true))).rejects.toThrow()
    expect(ran).toBe(false)
    expect(failures).toHaveLength(1)
  })

  it('reports the lost write itself when the failure before it is never heard of', async () => {
    const lmdb = failingOnCue(dbs.root)
    const failures: unknown[] = []
    const queue = new WriteQueue<bigint, void>(lmdb.transactions, dbs.meta, {
      write: () => undefined,
      committed: () => undefined,
      failed: (error) => void failures.push(error),
      lostWriteWaitMs: 50,
    })
    lmdb.failNext()
    void queue.commit(100n).catch(() => undefined)
    await waitFor(() => expect(lmdb.ran()).toBe(true))
    const behind = queue.commit(200n).catch((error: unknown) => error as Error)
    // The first one's failure is never reported: the lost write stops the process all the same.
    expect((await behind)?.message).toMatch(/^LMDB write lost/)
    expect(failures).toEqual([await behind])
  })

  it('reports a failure heard of first with its cause', async () => {
    const lmdb = failingOnCue(dbs.root)
    const { queue, failures } = lsnQueue(lmdb.transactions)
    lmdb.failNext()
    const lost = queue.commit(100n)
    await waitFor(() => expect(lmdb.ran()).toBe(true))
    lmdb.report()
    await expect(lost).rejects.toThrow('LMDB commit failed')
    expect(failures).toEqual([expect.objectContaining({ message: 'LMDB commit failed', code: 'EIO' })])
  })

  it('counts committed transactions in storage, so a reopened store carries on from the count', async () => {
    const first = lsnQueue(dbs.root)
    await first.queue.commit(100n)
    await first.queue.transaction(() => dbs.meta.putSync('other', 'x'))
    await dbs.root.close()
    dbs = openLogDatabases(dir)
    const second = lsnQueue(dbs.root)
    await second.queue.commit(200n)
    expect(dbs.meta.get('lsn')).toBe('200')
    expect(second.failures).toEqual([])
  })
})

/** LMDB whose transactions wait, in the order asked for, until `open()`. */
function heldUntilOpen(root: RootDatabase) {
  let open: () => void = () => undefined
  const opened = new Promise<void>((resolve) => (open = resolve))
  const transactions: WriteTransactions = {
    transaction<T>(write: () => T): Promise<T> {
      // Asked for in order, so queued in LMDB in order once open.
      return opened.then(() => root.transaction(write))
    },
  }
  return { transactions, open: () => open() }
}

describe('WriteQueue.together', () => {
  it('never moves a write ahead of a transaction queued before it (a snapshot end ahead of its shape\'s held transactions: a crash between them lost them)', async () => {
    const lmdb = heldUntilOpen(dbs.root)
    const order: string[] = []
    const queue = new WriteQueue<string, void>(lmdb.transactions, dbs.meta, {
      write: (batches) => void order.push(...batches),
      committed: () => undefined,
      failed: () => undefined,
    })
    // Another shape's registration waits for LMDB; then the log entries a starting snapshot released; then that snapshot ends.
    const registered = queue.together(() => void order.push('another shape registered'))
    const released = queue.commit('held transactions released to the log')
    const ended = queue.together(() => void order.push('snapshot ended, shape ready'))
    lmdb.open()
    await Promise.all([registered, released, ended])
    expect(order).toEqual(['another shape registered', 'held transactions released to the log', 'snapshot ended, shape ready'])
  })

  it('runs writes asked for while their transaction waits in that one transaction, each with its own outcome', async () => {
    const { queue } = lsnQueue(dbs.root)
    const writesBefore = Number(dbs.meta.get('writes') ?? '0')
    const results = await Promise.allSettled([
      queue.together(() => dbs.meta.putSync('a', '1')),
      queue.together(() => {
        throw new Error('this one only')
      }),
      queue.together(() => dbs.meta.get('a')),
    ])
    expect(results.map((r) => (r.status === 'fulfilled' ? r.value : (r.reason as Error).message))).toEqual([true, 'this one only', '1'])
    // One transaction for the three: one more in the count of committed ones.
    expect(Number(dbs.meta.get('writes'))).toBe(writesBefore + 1)
    // Once that one has run, a write takes a new transaction.
    await queue.together(() => dbs.meta.putSync('b', '2'))
    expect(Number(dbs.meta.get('writes'))).toBe(writesBefore + 2)
  })

  it('writes nothing after a failed commit', async () => {
    const lmdb = failingOnCue(dbs.root)
    const { queue, failures } = lsnQueue(lmdb.transactions)
    lmdb.failNext()
    const lost = queue.together(() => dbs.meta.putSync('a', '1'))
    await waitFor(() => expect(lmdb.ran()).toBe(true))
    let ran = false
    const behind = queue.together(() => (ran = true)).then(() => undefined, (error: unknown) => error as Error)
    lmdb.report()
    await expect(lost).rejects.toThrow('LMDB commit failed')
    expect((await behind)?.message).toMatch(/^LMDB write lost/)
    expect(ran).toBe(false)
    expect(dbs.meta.get('a')).toBeUndefined()
    expect(failures).toHaveLength(1)
  })
})
