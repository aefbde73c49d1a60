/**
 * The owner's side of what workers know (docs/ARCHITECTURE.md I27): it collects the shapes whose
 * state moved (a commit's heads, a snapshot's progress or end, a drop) and sends them to every
 * worker once per event-loop turn, so a burst of commits is one message. Each feed is read from
 * the owner's state in one synchronous step — heads, snapshot state, the move-ins being read
 * (I25) and the LSN committed together — which is the moment every reader in the owner would
 * see too (I16). The LSN and health also move without any shape (idle commits, a lost
 * connection): a timer sends those.
 */
import type { Health } from '../http/app.js'
import type { Lsn } from '../pg/lsn.js'
import { SHAPE_PHASE, type ActiveShape } from '../shapes/active-shape.js'
import type { ShapeHandle } from '../shapes/shape-handle.js'
import type { ShapeLogStore } from '../storage/shape-log-store.js'
import { toWireError, type FeedMessage, type ShapeState } from './messages.js'

export interface CommitFeedDeps {
  readonly store: Pick<ShapeLogStore, 'head' | 'committedLsn' | 'getShape' | 'shapes'>
  /** The owner's live shape of a handle (`ShapeManager.byHandle`, a use: asked once a shape). */
  readonly byHandle: (handle: ShapeHandle) => ActiveShape | undefined
  readonly health: () => Health
  readonly broadcast: (message: FeedMessage) => void
}

/** How often the LSN committed and health are sent when no shape moved. */
const IDLE_FEED_MS = 100

export class CommitFeed {
  readonly #deps: CommitFeedDeps
  readonly #moved = new Set<number>()
  /** The owner's live shapes the feed has named, by id. */
  readonly #shapes = new Map<number, ActiveShape>()
  /**
   * The live shapes with subqueries a feed has named: only these can have a move-in being read
   * (`heldFrom`), and each feed says which do. A shape is named before a worker can answer it
   * up-to-date (its snapshot's end is a move), so none is missed.
   */
  readonly #withSubqueries = new Map<number, ActiveShape>()
  #scheduled: NodeJS.Immediate | undefined
  #sent: { committedLsn: bigint; health: Health | undefined } = { committedLsn: -1n, health: undefined }
  readonly #idleTimer: NodeJS.Timeout

  constructor(deps: CommitFeedDeps) {
    this.#deps = deps
    this.#idleTimer = setInterval(() => {
      if (this.#deps.store.committedLsn !== this.#sent.committedLsn || this.#deps.health() !== this.#sent.health) this.#schedule()
    }, IDLE_FEED_MS).unref()
  }

  /** The shape's state changed: the next feed carries it. */
  moved(shapeId: number): void {
    this.#moved.add(shapeId)
    this.#schedule()
  }

  /** Every live shape, for a worker that just started. */
  everything(): FeedMessage {
    const shapes: ShapeState[] = []
    for (const stored of this.#deps.store.shapes()) {
      const state = this.stateOf(stored.id, stored.handle)
      if (!state.gone) shapes.push(state)
    }
    return this.#message(shapes)
  }

  /** `handle`: the shape's, when the caller has it at hand. */
  stateOf(shapeId: number, handle?: ShapeHandle): ShapeState {
    const { store } = this.#deps
    const shape = this.#shapeOf(shapeId, handle)
    if (!shape || shape.dropped) this.#shapes.delete(shapeId)
    if (shape?.subqueries && !shape.dropped) this.#withSubqueries.set(shapeId, shape)
    else this.#withSubqueries.delete(shapeId)
    const phase = shape?.phase
    const failure = phase?.kind === SHAPE_PHASE.dropped && phase.failure ? { failure: toWireError(phase.failure) } : {}
    return {
      id: shapeId,
      head: store.head(shapeId),
      snapshotComplete: shape?.snapshotComplete ?? false,
      gone: !shape || shape.dropped,
      ...failure,
    }
  }

  /** The shape of an id, looked up by its handle (from storage's record unless given) once. */
  #shapeOf(shapeId: number, handle: ShapeHandle | undefined): ActiveShape | undefined {
    const known = this.#shapes.get(shapeId)
    if (known) return known
    const byHandle = handle ?? this.#deps.store.getShape(shapeId)?.handle
    const shape = byHandle === undefined ? undefined : this.#deps.byHandle(byHandle)
    if (shape && shape.stored.id === shapeId) this.#shapes.set(shapeId, shape)
    return shape?.stored.id === shapeId ? shape : undefined
  }

  stop(): void {
    clearInterval(this.#idleTimer)
    if (this.#scheduled) clearImmediate(this.#scheduled)
  }

  #schedule(): void {
    this.#scheduled ??= setImmediate(() => {
      this.#scheduled = undefined
      const shapes = [...this.#moved].map((id) => this.stateOf(id))
      this.#moved.clear()
      this.#deps.broadcast(this.#message(shapes))
    })
  }

  #message(shapes: ShapeState[]): FeedMessage {
    const { store, health } = this.#deps
    const held: (readonly [number, Lsn])[] = []
    for (const [id, shape] of this.#withSubqueries) {
      const from = shape.heldFrom
      if (from !== undefined) held.push([id, from])
    }
    const message: FeedMessage = { kind: 'feed', committedLsn: store.committedLsn, health: health(), shapes, held }
    this.#sent = { committedLsn: message.committedLsn, health: message.health }
    return message
  }
}
