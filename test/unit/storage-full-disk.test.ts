/**
 * A write that fails for real (storage on a 1 MB tmpfs, filled by the store itself): the failure
 * reaches `onFailure` and nothing else rejects unheard (docs/ARCHITECTURE.md I35). The soak once
 * saw Sluice die of an unhandled "Commit failed (see commitError for details)" on EIO without its
 * fatal log line: lmdb's event-turn batching made a commit promise of its own for each batch it
 * started and gave it to no one. Mounting needs root; elsewhere the suite is skipped with the reason.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest'
import { DataDisk } from '../../soak/data-disk.js'
import { lsn } from '../../src/pg/lsn.js'
import type { ShapeDefinition } from '../../src/shapes/shape-definition.js'
import { ShapeLogStore } from '../../src/storage/shape-log-store.js'
import { drained, waitFor } from '../support/wait.js'

const ITEMS: ShapeDefinition = { table: { schema: 'public', name: 'items' }, replica: 'default', log: 'full' }
const SNAPSHOT = { xmin: '1', xmax: '1', xip: [] }
/** Each commit: 20 entries of 2 KB, so the 1 MB disk is full after a few dozen. */
const ENTRY = 'x'.repeat(2000)

const root = await mkdtemp(join(tmpdir(), 'sluice-unit-full-disk-'))
const probe = await DataDisk.mount(join(root, 'probe'), 1)
const skipReason = typeof probe === 'string' ? probe : undefined
if (typeof probe !== 'string') await probe.unmount()
if (skipReason) console.warn(`test/unit/storage-full-disk.test.ts skipped: ${skipReason}`)

/** An error and its cause, as the fatal log line shows them. */
const described = (error: unknown): string => {
  const { message, cause } = error as Error
  return cause instanceof Error ? `${message}: ${cause.message}` : message
}

let disk: DataDisk
const unhandled: unknown[] = []
const listen = (reason: unknown) => void unhandled.push(reason)

beforeEach(async () => {
  if (skipReason) return
  unhandled.length = 0
  process.on('unhandledRejection', listen)
  disk = (await DataDisk.mount(await mkdtemp(join(root, 'disk-')), 1)) as DataDisk
})

afterEach(async () => {
  process.off('unhandledRejection', listen)
  await disk?.unmount()
})

afterAll(async () => {
  await rm(root, { recursive: true, force: true })
})

describe.skipIf(skipReason !== undefined)('storage on a full disk', () => {
  it('reports the failed commit to onFailure, with its cause, and leaves no rejection unhandled', async () => {
    const failures: unknown[] = []
    // Never closed: after a failed commit lmdb's close waits for a flush that never comes
    // (src/server.ts's storageFailed exits without it).
    const opened = ShapeLogStore.open(join(disk.dir, 'shapes'), { chunkBytes: 10_000, onFailure: (error) => void failures.push(error) })
    const shape = await opened.createShape(ITEMS, 'items')
    await opened.finishSnapshot(shape.id, Buffer.from('{}'), SNAPSHOT)
    const outcomes: Promise<unknown>[] = []
    for (let tx = 1n; failures.length === 0 && tx < 2000n; tx++) {
      const commit = opened.commit({ durableLsn: lsn(tx * 10n), appends: [{ shapeId: shape.id, tx: lsn(tx * 10n), firstOp: 0, entries: Array.from({ length: 20 }, () => ENTRY) }] })
      // As the commit pipeline does: every commit and its flush are watched.
      const outcome = commit.then(({ durable }) => durable)
      outcomes.push(outcome.then(() => undefined, (error: unknown) => error))
      // Some commits wait for the one before, some join its group.
      if (tx % 3n === 0n) await outcome.catch(() => undefined)
    }
    // What the commit pipeline hands on to the same fatal exit: each names LMDB's cause, or the lost write.
    const rejections = (await Promise.all(outcomes)).filter((error) => error !== undefined)
    expect(rejections.length).toBeGreaterThan(0)
    for (const error of rejections) expect(described(error)).toMatch(/^LMDB commit failed: (No space left on device|Input\/output error)|^LMDB write lost/)
    await waitFor(() => expect(failures).toHaveLength(1))
    expect(described(failures[0])).toMatch(/^LMDB commit failed: (No space left on device|Input\/output error)/)
    // An unhandled rejection is reported once the microtasks of the turn it happened in have run.
    await drained()
    expect(unhandled).toEqual([])
  })
})
