/**
 * The commit pipeline on its own (`commit-pipeline.ts`, docs/ARCHITECTURE.md I5, I11): batches
 * in order, readers woken once a batch is readable, PostgreSQL told only once it is durable.
 */
import { afterEach, describe, expect, it, vi } from 'vitest'
import { lsn, type Lsn } from '../../src/pg/lsn.js'
import { CommitPipeline, IDLE_COMMIT_EVERY_MS, MAX_COMMITS_IN_FLIGHT, type CommitStore } from '../../src/shapes/commit-pipeline.js'
import type { LogBatch, ShapeAppend } from '../../src/storage/shape-log-store.js'
import { drained } from '../support/wait.js'

/** A store whose commits become readable, then durable, only when the test says so. */
function steppedStore(committedLsn = 0n) {
  const batches: { batch: LogBatch; readable: () => void; durable: () => void; fail: (error: Error) => void; flushFails: (error: Error) => void }[] = []
  const store = {
    committedLsn: lsn(committedLsn),
    durableLsn: lsn(committedLsn),
    commit: (batch: LogBatch) =>
      new Promise((resolve, reject) => {
        let durable!: () => void
        let flushFails!: (error: Error) => void
        const flushed = new Promise<void>((done, failed) => {
          durable = done
          flushFails = failed
        }).then(() => {
          if (batch.durableLsn > store.durableLsn) store.durableLsn = batch.durableLsn
        })
        batches.push({ batch, readable: () => resolve({ durable: flushed }), durable, fail: reject, flushFails })
      }),
    stage: async () => {},
    discardStaged: () => {},
    flushed: async () => {},
  } satisfies CommitStore as CommitStore & { durableLsn: Lsn; committedLsn: Lsn }
  return { store, batches }
}

function makePipeline(store: CommitStore, now?: () => number) {
  const acknowledged: bigint[] = []
  const notified: number[] = []
  const failures: unknown[] = []
  const pipeline = new CommitPipeline({
    store,
    notifier: { notify: (id) => notified.push(id) },
    acknowledge: (durable) => acknowledged.push(durable),
    onStorageFailure: (error) => failures.push(error),
    ...(now ? { now } : {}),
  })
  return { pipeline, acknowledged, notified, failures }
}

const append = (shapeId: number, tx: number, entries = 1): ShapeAppend => ({ shapeId, tx: lsn(BigInt(tx)), firstOp: 0, entries: Array.from({ length: entries }, () => '{}') })

afterEach(() => {
  vi.useRealTimers()
})

describe('CommitPipeline', () => {
  it('wakes readers once a batch is readable and acknowledges its LSN only once it is durable', async () => {
    const { store, batches } = steppedStore()
    const { pipeline, acknowledged, notified } = makePipeline(store)
    await pipeline.commitTransaction(lsn(101n), [append(1, 100), append(2, 100)])
    expect(batches.map(({ batch }) => batch.durableLsn)).toEqual([101n])
    batches[0]!.readable()
    await drained()
    expect(notified).toEqual([1, 2])
    expect(acknowledged).toEqual([])
    batches[0]!.durable()
    await drained()
    expect(acknowledged).toEqual([101n])
    expect(pipeline.accepted).toBe(101n)
  })

  it('commits a released held transaction with the LSN already handed on, and acknowledges nothing for it', async () => {
    const { store, batches } = steppedStore(50n)
    const { pipeline, acknowledged, notified } = makePipeline(store)
    void pipeline.commitReleased(append(3, 40))
    await pipeline.commitTransaction(lsn(201n), [])
    void pipeline.commitReleased(append(3, 150))
    expect(batches.map(({ batch }) => [batch.durableLsn, batch.appends.length])).toEqual([[50n, 1], [201n, 0], [201n, 1]])
    for (const step of batches) {
      step.readable()
      step.durable()
    }
    await pipeline.flushed()
    await drained()
    expect(notified).toEqual([3, 3])
    expect(acknowledged).toEqual([201n])
  })

  it('makes the stream wait while too many commits are in flight, until the oldest is done', async () => {
    const { store, batches } = steppedStore()
    const { pipeline } = makePipeline(store)
    for (let i = 1; i <= MAX_COMMITS_IN_FLIGHT; i++) await pipeline.commitTransaction(lsn(BigInt(i)), [])
    let taken = false
    const next = pipeline.commitTransaction(lsn(BigInt(MAX_COMMITS_IN_FLIGHT + 1)), []).then(() => (taken = true))
    await drained()
    expect(taken).toBe(false)
    batches[0]!.readable()
    await next
    expect(taken).toBe(true)
  })

  it('hands a failed commit to the owner', async () => {
    const { store, batches } = steppedStore()
    const { pipeline, failures } = makePipeline(store)
    await pipeline.commitTransaction(lsn(10n), [append(1, 9)])
    batches[0]!.fail(new Error('disk full'))
    await pipeline.flushed()
    expect(failures).toEqual([new Error('disk full')])
  })

  it('hands a failed flush to the owner, also of a released held transaction, which acknowledges nothing', async () => {
    // lmdb's flush promise is the last write's: a later write's failure rejects it (CI: an unhandled rejection ended Sluice before its fatal line).
    const { store, batches } = steppedStore(50n)
    const { pipeline, acknowledged, failures } = makePipeline(store)
    void pipeline.commitReleased(append(3, 40))
    batches[0]!.readable()
    await drained()
    batches[0]!.flushFails(new Error('ENOSPC'))
    await drained()
    expect(failures).toEqual([new Error('ENOSPC')])
    expect(acknowledged).toEqual([])
  })

  it('acknowledges WAL with no changes at most once a second, keeping the latest position meanwhile', async () => {
    vi.useFakeTimers()
    let now = 10_000
    const { store, batches } = steppedStore(100n)
    const { pipeline } = makePipeline(store, () => now)
    // Nothing new: no commit at all.
    pipeline.idle(lsn(100n))
    expect(batches).toHaveLength(0)
    pipeline.idle(lsn(200n))
    expect(batches.map(({ batch }) => batch.durableLsn)).toEqual([200n])
    expect(pipeline.accepted).toBe(200n)
    now += 100
    pipeline.idle(lsn(300n))
    pipeline.idle(lsn(400n))
    expect(batches).toHaveLength(1)
    now += IDLE_COMMIT_EVERY_MS
    vi.advanceTimersByTime(IDLE_COMMIT_EVERY_MS)
    expect(batches.map(({ batch }) => batch.durableLsn)).toEqual([200n, 400n])
  })

  it('forgets a pending idle position when the stream stops, and starts over at a reset', async () => {
    vi.useFakeTimers()
    let now = 10_000
    const { store, batches } = steppedStore(100n)
    const { pipeline } = makePipeline(store, () => now)
    pipeline.idle(lsn(200n))
    pipeline.idle(lsn(300n))
    batches[0]!.readable()
    batches[0]!.durable()
    await pipeline.stop()
    now += IDLE_COMMIT_EVERY_MS
    vi.advanceTimersByTime(IDLE_COMMIT_EVERY_MS)
    expect(batches).toHaveLength(1)
    pipeline.reset(lsn(5n))
    expect(pipeline.accepted).toBe(5n)
    void pipeline.commitReleased(append(1, 4))
    expect(batches[1]!.batch.durableLsn).toBe(5n)
  })
})
