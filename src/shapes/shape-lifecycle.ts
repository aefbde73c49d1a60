/**
 * The lifecycle questions a request asks (docs/ARCHITECTURE.md I9): which shape a handle or a
 * definition names now, whether the client must refetch, and when the shape's snapshot is there.
 * http/ asks; the answers are decided here, from the shape's phase and the table as it is now.
 */
import { RequestAbortedError } from '../errors.js'
import type { TableCatalog } from '../pg/table-catalog.js'
import { droppedError, type ActiveShape } from './active-shape.js'
import { definitionKey, type ShapeDefinition } from './shape-definition.js'
import { FOREIGN_HANDLE, type ShapeHandle } from './shape-handle.js'
import type { ShapeManager } from './shape-manager.js'
import type { ShapeNotifier } from './shape-notifier.js'
import { schemaChange } from './schema-drift.js'

export interface ShapeLifecycleDeps {
  readonly manager: Pick<ShapeManager, 'byHandle' | 'byDefinition' | 'drop'>
  /** The table as it is now (cached briefly). */
  readonly tables: Pick<TableCatalog, 'find' | 'forget'>
}

export const LOOKUP = {
  /** The shape to serve. */
  current: 'current',
  /** The client's handle is gone or names another shape: 409, with the definition's current handle. */
  refetch: 'refetch',
  /** No shape for the definition yet: create it. */
  absent: 'absent',
} as const

export type Lookup =
  | { readonly kind: typeof LOOKUP.current; readonly shape: ActiveShape }
  | { readonly kind: typeof LOOKUP.refetch; readonly why: string }
  | { readonly kind: typeof LOOKUP.absent }

/** The shape a request names: by its handle, which must still be the definition's, or by its definition. */
export async function lookUpShape(
  deps: ShapeLifecycleDeps,
  definition: ShapeDefinition,
  handle: ShapeHandle | typeof FOREIGN_HANDLE | undefined,
): Promise<Lookup> {
  const { manager } = deps
  if (handle === undefined) {
    const shape = await stillCurrent(deps, manager.byDefinition(definition))
    return shape ? { kind: LOOKUP.current, shape } : { kind: LOOKUP.absent }
  }
  const shape = handle === FOREIGN_HANDLE ? undefined : await stillCurrent(deps, manager.byHandle(handle))
  if (shape && definitionKey(shape.stored.definition) === definitionKey(definition)) return { kind: LOOKUP.current, shape }
  return { kind: LOOKUP.refetch, why: shape ? 'the handle belongs to a different shape definition' : 'the shape handle is unknown or was removed' }
}

/**
 * The shape, unless its table changed in a way its log cannot follow (a DDL with no write
 * after it sends no Relation message; a dropped table none at all): then it is dropped here.
 * The catalog answer is cached for a few seconds. When the database is unreachable the shape
 * is served from storage as it is.
 */
export async function stillCurrent(deps: ShapeLifecycleDeps, shape: ActiveShape | undefined): Promise<ActiveShape | undefined> {
  if (!shape) return undefined
  let why: string | undefined
  try {
    const current = await deps.tables.find(shape.stored.definition.table)
    why = current ? schemaChange(shape, { ...current.table, oid: current.oid, columns: current.columns, key: current.primaryKey }) : 'the table was dropped'
  } catch {
    return shape
  }
  if (!why) return shape
  deps.tables.forget(shape.stored.definition.table)
  await deps.manager.drop(shape, `schema change: ${why}`)
  return undefined
}

/** How long one wait for a snapshot's end lasts before the shape's phase is read again. */
const SNAPSHOT_POLL_MS = 1_000

/** Resolves once the shape's snapshot is complete; throws what its clients get if it is dropped first. */
export async function waitForSnapshot(notifier: Pick<ShapeNotifier, 'wait'>, shape: ActiveShape, signal?: AbortSignal): Promise<void> {
  while (!shape.snapshotComplete) {
    if (shape.dropped) throw droppedError(shape)
    await notifier.wait(shape.stored.id, SNAPSHOT_POLL_MS, signal)
    if (signal?.aborted) throw new RequestAbortedError()
  }
}
