/**
 * A worker's registry mirrored from the owner (docs/ARCHITECTURE.md I27), against the owner's
 * storage in a temporary directory and an owner that answers over a fake IPC channel.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import type { FeedMessage, ShapeState, WorkerMessage } from '../src/cluster/messages.js'
import { OwnerLink } from '../src/cluster/owner-link.js'
import { WorkerShapes } from '../src/cluster/worker-shapes.js'
import { MustRefetchError, UnavailableError } from '../src/errors.js'
import { HEALTH } from '../src/http/app.js'
import { createLogger } from '../src/log.js'
import { lsn } from '../src/pg/lsn.js'
import { definitionKey, type ShapeDefinition } from '../src/shapes/shape-definition.js'
import { ShapeNotifier } from '../src/shapes/shape-notifier.js'
import { ReadOnlyShapeLog } from '../src/storage/read-only-shape-log.js'
import { ShapeLogStore } from '../src/storage/shape-log-store.js'
import { ITEMS_TABLE } from './support/items-table.js'

const ITEMS: ShapeDefinition = { table: { schema: 'public', name: 'items' }, replica: 'default', log: 'full' }

let dir: string
let store: ShapeLogStore
let reader: ReadOnlyShapeLog

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sluice-worker-shapes-'))
  store = ShapeLogStore.open(dir, { chunkBytes: 1_000 })
})

afterEach(async () => {
  await reader.close()
  await store.close()
  await rm(dir, { recursive: true, force: true })
})

/**
 * A worker's registry whose owner answers every get-or-create with `state`, then sends the feeds
 * `thenFeeds` gives: handled, as IPC hands them over, before the reply's `await` resumes.
 */
function workerShapes(state: (id: number) => ShapeState, thenFeeds: (id: number) => FeedMessage[] = () => []): WorkerShapes {
  reader = new ReadOnlyShapeLog(dir, () => new MustRefetchError(undefined, 'shape was dropped'))
  const owner: OwnerLink = new OwnerLink((message: WorkerMessage) => {
    if (message.kind !== 'request' || message.operation.op !== 'get-or-create') return
    const id = store.shapes()[0]!.id
    queueMicrotask(() => {
      owner.onReply({ kind: 'reply', requestId: message.requestId, shape: state(id) })
      for (const feed of thenFeeds(id)) shapes.apply(feed)
    })
  })
  const shapes = new WorkerShapes({ reader, notifier: new ShapeNotifier(), owner, tables: { get: () => Promise.resolve(ITEMS_TABLE) }, log: createLogger('silent') })
  return shapes
}

describe('WorkerShapes', () => {
  it('does not take in a shape the owner says is gone in its reply, which no later feed would name again', async () => {
    // Its record is still there: the owner deletes it after the drop is announced.
    const stored = await store.createShape(ITEMS, definitionKey(ITEMS), ['id'], ITEMS_TABLE)
    const shapes = workerShapes((id) => ({ id, head: undefined, snapshotComplete: false, gone: true }))

    await expect(shapes.getOrCreate(ITEMS, ITEMS_TABLE)).rejects.toBeInstanceOf(MustRefetchError)
    expect(shapes.byHandle(stored.handle)).toBeUndefined()
    expect(shapes.byDefinition(ITEMS)).toBeUndefined()
  })

  it('forgets a shape its reply names live when a feed right behind the reply says it is gone', async () => {
    const stored = await store.createShape(ITEMS, definitionKey(ITEMS), ['id'], ITEMS_TABLE)
    const gone = (id: number): FeedMessage => ({
      kind: 'feed',
      committedLsn: lsn(0n),
      health: HEALTH.active,
      shapes: [{ id, head: undefined, snapshotComplete: false, gone: true }],
      held: [],
    })
    const shapes = workerShapes((id) => ({ id, head: undefined, snapshotComplete: false, gone: false }), (id) => [gone(id)])

    // Not a shape whose requests would wait for a snapshot the owner no longer takes.
    await expect(shapes.getOrCreate(ITEMS, ITEMS_TABLE)).rejects.toBeInstanceOf(UnavailableError)
    expect(shapes.byHandle(stored.handle)).toBeUndefined()
    expect(shapes.byDefinition(ITEMS)).toBeUndefined()
  })

  it('serves a shape the owner names live', async () => {
    const stored = await store.createShape(ITEMS, definitionKey(ITEMS), ['id'], ITEMS_TABLE)
    const shapes = workerShapes((id) => ({ id, head: undefined, snapshotComplete: false, gone: false }))

    const shape = await shapes.getOrCreate(ITEMS, ITEMS_TABLE)
    expect(shape.stored.handle).toBe(stored.handle)
    expect(shapes.byHandle(stored.handle)).toBe(shape)
  })
})
