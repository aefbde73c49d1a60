/**
 * A worker's registry of shapes (`ShapeRegistry`), mirrored from the owner (docs/ARCHITECTURE.md
 * I27): the feed says which shapes exist and where each one stands, storage holds their records
 * and logs. Creating, replacing and dropping a shape are the owner's: they go to it over IPC, and
 * the worker serves the shape it names. A shape is bound to its table (its `where` compiled) the
 * first time this worker serves it, or as soon as it learns of it when binding needs the catalog
 * (a where with subqueries reads other tables); its phase follows the owner's through
 * `ActiveShape`'s own transitions (I20): waiting until the feed says its snapshot is complete,
 * dropped when it is gone. Its `heldFrom` is the owner's, as the last feed said (I16, I25).
 */
import { MustRefetchError, UnavailableError, type InvalidRequestError } from '../errors.js'
import type { ShapeRegistry, TableLookup } from '../http/shape-route.js'
import type { Logger } from '../log.js'
import type { TableInfo } from '../pg/introspect.js'
import { subqueryTables } from '../http/subquery-tables.js'
import type { Lsn } from '../pg/lsn.js'
import { ActiveShape, type HeldFrom } from '../shapes/active-shape.js'
import { definitionKey, type ShapeDefinition } from '../shapes/shape-definition.js'
import { bindShape, type BoundShape, type RequestWhere } from '../shapes/shape-filter.js'
import type { ShapeHandle } from '../shapes/shape-handle.js'
import type { ShapeNotifier } from '../shapes/shape-notifier.js'
import { visibilityOf } from '../shapes/xid-visibility.js'
import { tablesOfWhere } from '../shapes/where/compile-where.js'
import type { ReadOnlyShapeLog, ShapePosition } from '../storage/read-only-shape-log.js'
import type { StoredShape } from '../storage/shape-log-store.js'
import { fromWireError, type FeedMessage, type ShapeState } from './messages.js'
import type { OwnerLink } from './owner-link.js'

interface KnownShape {
  readonly stored: StoredShape
  snapshotComplete: boolean
  /** Once bound. */
  active?: ActiveShape
}

export interface WorkerShapesDeps {
  readonly reader: ReadOnlyShapeLog
  readonly notifier: ShapeNotifier
  readonly owner: OwnerLink
  /** For shapes whose `where` names columns they do not select: bound to the whole table. */
  readonly tables: Pick<TableLookup, 'get'>
  readonly log: Logger
}

export class WorkerShapes implements ShapeRegistry {
  readonly #deps: WorkerShapesDeps
  readonly #known = new Map<number, KnownShape>()
  readonly #byHandle = new Map<string, number>()
  readonly #byKey = new Map<string, number>()
  /** Shapes being bound through the catalog, asked of it once. */
  readonly #binding = new Set<number>()
  /** The owner's move-ins being read, by shape, as of the last feed. */
  #heldFrom = new Map<number, Lsn>()

  constructor(deps: WorkerShapesDeps) {
    this.#deps = deps
  }

  get size(): number {
    return this.#known.size
  }

  /** Takes in one feed from the owner: storage first, then the shapes, then their waiters. */
  apply(feed: FeedMessage): void {
    const { reader, notifier } = this.#deps
    const live = feed.shapes.filter((state) => !state.gone)
    reader.apply(feed.committedLsn, live.map((state) => [state.id, positionOf(state)] as const), feed.shapes.filter((s) => s.gone).map((s) => s.id))
    this.#heldFrom = new Map(feed.held)
    for (const state of feed.shapes) {
      if (state.gone) this.#forget(state)
      else this.#learn(state)
    }
    for (const state of feed.shapes) notifier.notify(state.id)
  }

  byHandle(handle: ShapeHandle): ActiveShape | undefined {
    const id = this.#byHandle.get(handle)
    return id === undefined ? undefined : this.#activeOf(id, undefined)
  }

  byDefinition(definition: ShapeDefinition): ActiveShape | undefined {
    const id = this.#byKey.get(definitionKey(definition))
    return id === undefined ? undefined : this.#activeOf(id, undefined)
  }

  async getOrCreate(definition: ShapeDefinition, table: TableInfo, where: RequestWhere = {}): Promise<ActiveShape> {
    const tables = where.tables ?? new Map()
    // A shape is learnt from the reply as it arrives, not after the await: IPC hands over the
    // messages that came with the reply before the await resumes, and a feed among them saying the
    // shape was dropped (its snapshot failed just after its creation) must find it to forget it. A
    // shape learnt after that feed would never be forgotten, its requests waiting for a snapshot
    // that never ends (the two-worker soak's stuck client, seed 1142072819).
    const { shape: state } = await this.#deps.owner.request({ op: 'get-or-create', definition, table, tables }, ({ shape: named }) => {
      if (named && !named.gone) this.#learnNamed(named)
    })
    if (!state) throw new UnavailableError('The owner process did not name a shape; retry shortly.')
    // Dropped between its creation and the reply (its snapshot failed, its table changed): the feed
    // saying so may have come first. Its clients get what the owner's would.
    if (state.gone) throw state.failure ? fromWireError(state.failure) : new MustRefetchError(undefined, 'shape was dropped')
    const shape = this.#activeOf(state.id, { table, ...where })
    if (!shape) throw new UnavailableError('The shape was dropped as it was created; retry shortly.')
    return shape
  }

  async mustRefetch(definition: ShapeDefinition, table: TableInfo, why: string, where: RequestWhere = {}): Promise<never> {
    await this.#deps.owner.request({ op: 'replace', definition, table, tables: where.tables ?? new Map(), why })
    throw new UnavailableError('The owner process did not name the current shape; retry shortly.')
  }

  async drop(shape: ActiveShape, reason: string): Promise<void> {
    if (shape.dropped) return
    this.#forget({ id: shape.stored.id })
    this.#deps.notifier.notify(shape.stored.id)
    await this.#deps.owner.request({ op: 'drop', handle: shape.stored.handle, reason })
  }

  /** A shape a reply named: the reply may overtake the feed that announces it, so its position comes with it. */
  #learnNamed(state: ShapeState): void {
    if (!this.#known.has(state.id)) this.#deps.reader.apply(this.#deps.reader.committedLsn, [[state.id, positionOf(state)]])
    this.#learn(state)
  }

  #learn(state: ShapeState): void {
    let known = this.#known.get(state.id)
    if (!known) {
      const stored = this.#deps.reader.getShape(state.id)
      if (!stored) return
      known = { stored, snapshotComplete: false }
      this.#known.set(state.id, known)
      this.#byHandle.set(stored.handle, state.id)
      this.#byKey.set(stored.definitionKey, state.id)
      // Such a where cannot be bound from storage alone: bound now, its first request finds it so.
      if (hasSubqueries(stored.definition)) this.#bindLater(known)
    }
    if (state.snapshotComplete && !known.snapshotComplete) {
      known.snapshotComplete = true
      if (known.active) this.#complete(known.active)
    }
  }

  /** The owner's snapshot is complete, its record written in the same transaction as its end. */
  #complete(shape: ActiveShape): void {
    const snapshot = shape.stored.snapshot ?? this.#deps.reader.getShape(shape.stored.id)?.snapshot
    if (!snapshot) return
    shape.startSnapshot(visibilityOf(snapshot))
    shape.completeSnapshot()
  }

  #forget(state: Pick<ShapeState, 'id' | 'failure'>): void {
    const known = this.#known.get(state.id)
    if (!known) return
    known.active?.drop(state.failure ? (fromWireError(state.failure) as InvalidRequestError) : undefined)
    this.#known.delete(state.id)
    if (this.#byHandle.get(known.stored.handle) === state.id) this.#byHandle.delete(known.stored.handle)
    if (this.#byKey.get(known.stored.definitionKey) === state.id) this.#byKey.delete(known.stored.definitionKey)
  }

  /**
   * The shape, bound. The stored (narrowed) table binds most shapes; a `where` on columns the
   * shape does not select needs the whole table, and one with subqueries the tables they read:
   * without them at hand (the request's), the worker asks its catalog and answers 503 meanwhile.
   */
  #activeOf(id: number, request: BindWith | undefined): ActiveShape | undefined {
    const known = this.#known.get(id)
    if (!known) return undefined
    this.#deps.owner.touched(known.stored.handle)
    if (known.active) return known.active
    const bound = bindTo(known.stored, request) ?? bindTo(known.stored, known.stored.table && { table: known.stored.table })
    if (!bound) {
      this.#bindLater(known)
      throw new UnavailableError('This worker is loading the shape; retry shortly.')
    }
    known.active = ActiveShape.mirrored(known.stored, bound, this.#heldSource(id))
    if (known.snapshotComplete) this.#complete(known.active)
    return known.active
  }

  /** The shape's `heldFrom` as the latest feed has it. */
  #heldSource(id: number): HeldFrom {
    const shapes = this
    return {
      get heldFrom() {
        return shapes.#heldFrom.get(id)
      },
    }
  }

  #bindLater(known: KnownShape): void {
    const id = known.stored.id
    if (this.#binding.has(id)) return
    this.#binding.add(id)
    const { definition } = known.stored
    Promise.all([
      this.#deps.tables.get(definition.table),
      hasSubqueries(definition) ? subqueryTables(this.#deps.tables, tablesOfWhere(definition.where!)) : new Map(),
    ])
      .then(([table, tables]) => {
        if (this.#known.get(id) === known && !known.active) this.#activeOf(id, { table, tables })
      })
      .catch((error: unknown) => this.#deps.log.warn({ handle: known.stored.handle, err: (error as Error).message }, 'could not load the tables of a shape'))
      .finally(() => this.#binding.delete(id))
  }
}

/** A table to bind a shape to, with what the request knows of its where. */
type BindWith = RequestWhere & { readonly table: TableInfo }

/** A stored where is canonical, where a subquery is spelled `IN (SELECT …` (as `shapes/stored-shapes.ts` reads it). */
function hasSubqueries(definition: ShapeDefinition): boolean {
  return definition.where?.includes(' IN (SELECT ') ?? false
}

function positionOf(state: ShapeState): ShapePosition {
  return { head: state.head, snapshotComplete: state.snapshotComplete }
}

function bindTo(stored: StoredShape, using: BindWith | undefined): BoundShape | undefined {
  if (!using) return undefined
  try {
    return bindShape(stored.definition, using.table, using.tables, using.where)
  } catch {
    return undefined
  }
}
