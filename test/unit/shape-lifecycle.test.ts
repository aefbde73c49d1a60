/**
 * The lifecycle answers http/ asks for (`shape-lifecycle.ts`, docs/ARCHITECTURE.md I9): which
 * shape a request names now, when its client must refetch, and when a dropped shape's waiters stop.
 */
import { describe, expect, it } from 'vitest'
import { MustRefetchError, RequestAbortedError } from '../../src/errors.js'
import type { TableInfo } from '../../src/pg/introspect.js'
import type { ActiveShape } from '../../src/shapes/active-shape.js'
import type { TableName } from '../../src/pg/table-name.js'
import { definitionKey, type ShapeDefinition } from '../../src/shapes/shape-definition.js'
import { FOREIGN_HANDLE, type ShapeHandle } from '../../src/shapes/shape-handle.js'
import { LOOKUP, lookUpShape, waitForSnapshot, type ShapeLifecycleDeps } from '../../src/shapes/shape-lifecycle.js'
import { ShapeNotifier } from '../../src/shapes/shape-notifier.js'
import { ITEMS_TABLE, liveShape, SHOWS_NONE, waitingShape } from '../support/items-table.js'
import { drained } from '../support/wait.js'

const ITEMS: ShapeDefinition = liveShape(0).stored.definition
const FILTERED: ShapeDefinition = { ...ITEMS, where: 'id = 1' }

/** A registry holding `shapes`, and a catalog answering `table` (or failing) for every name. */
function deps(shapes: ActiveShape[], table: () => Promise<TableInfo | undefined> = async () => ITEMS_TABLE) {
  const dropped: string[] = []
  const forgotten: TableName[] = []
  const live = new Set(shapes)
  const found: ShapeLifecycleDeps = {
    manager: {
      byHandle: (handle) => [...live].find((shape) => shape.stored.handle === handle),
      byDefinition: (definition) => [...live].find((shape) => shape.stored.definitionKey === definitionKey(definition)),
      drop: async (shape, reason) => {
        dropped.push(`${shape.stored.handle}: ${reason}`)
        shape.drop()
        live.delete(shape)
      },
    },
    tables: { find: table, forget: (name) => forgotten.push(name) },
  }
  return { found, dropped, forgotten }
}

describe('lookUpShape', () => {
  it('finds the current shape by definition, or none to create', async () => {
    const shape = liveShape(1)
    expect(await lookUpShape(deps([shape]).found, ITEMS, undefined)).toEqual({ kind: LOOKUP.current, shape })
    expect(await lookUpShape(deps([]).found, ITEMS, undefined)).toEqual({ kind: LOOKUP.absent })
  })

  it('finds the shape by handle only for the same definition; any other handle is a refetch', async () => {
    const shape = liveShape(1)
    const { found } = deps([shape])
    expect(await lookUpShape(found, ITEMS, 'h1' as ShapeHandle)).toEqual({ kind: LOOKUP.current, shape })
    expect(await lookUpShape(found, FILTERED, 'h1' as ShapeHandle)).toEqual({ kind: LOOKUP.refetch, why: 'the handle belongs to a different shape definition' })
    expect(await lookUpShape(found, ITEMS, 'h2' as ShapeHandle)).toEqual({ kind: LOOKUP.refetch, why: 'the shape handle is unknown or was removed' })
    expect(await lookUpShape(found, ITEMS, FOREIGN_HANDLE)).toEqual({ kind: LOOKUP.refetch, why: 'the shape handle is unknown or was removed' })
  })

  it('drops a shape whose table changed under it with no Relation message, and forgets the table', async () => {
    const shape = liveShape(1)
    const renamedColumn = { ...ITEMS_TABLE, columns: [{ ...ITEMS_TABLE.columns[0]!, name: 'key' }] }
    const { found, dropped, forgotten } = deps([shape], async () => renamedColumn)
    expect(await lookUpShape(found, ITEMS, 'h1' as ShapeHandle)).toEqual({ kind: LOOKUP.refetch, why: 'the shape handle is unknown or was removed' })
    expect(dropped).toEqual(['h1: schema change: column id was dropped or renamed'])
    expect(forgotten).toEqual([ITEMS_TABLE.table])
    expect(shape.dropped).toBe(true)
  })

  it('drops a shape whose table is gone; serves it from storage as it is while the catalog cannot answer', async () => {
    const gone = deps([liveShape(1)], async () => undefined)
    expect(await lookUpShape(gone.found, ITEMS, undefined)).toEqual({ kind: LOOKUP.absent })
    expect(gone.dropped).toEqual(['h1: schema change: the table was dropped'])
    const shape = liveShape(2)
    const unreachable = deps([shape], () => Promise.reject(new Error('connection refused')))
    expect(await lookUpShape(unreachable.found, ITEMS, undefined)).toEqual({ kind: LOOKUP.current, shape })
    expect(unreachable.dropped).toEqual([])
  })
})

describe('waitForSnapshot', () => {
  it('resolves once the snapshot is complete, and gives a dropped shape\'s waiters its error', async () => {
    const notifier = new ShapeNotifier()
    const completing = waitingShape(1)
    let done = false
    const waited = waitForSnapshot(notifier, completing).then(() => (done = true))
    await drained()
    expect(done).toBe(false)
    completing.startSnapshot(SHOWS_NONE)
    completing.completeSnapshot()
    notifier.notify(1)
    await waited
    const dropping = waitingShape(2)
    const failed = waitForSnapshot(notifier, dropping)
    dropping.drop()
    notifier.notify(2)
    await expect(failed).rejects.toBeInstanceOf(MustRefetchError)
  })

  it('gives up when the request is', async () => {
    const aborted = new AbortController()
    const waiting = waitForSnapshot(new ShapeNotifier(), waitingShape(1), aborted.signal)
    aborted.abort()
    await expect(waiting).rejects.toBeInstanceOf(RequestAbortedError)
  })
})
