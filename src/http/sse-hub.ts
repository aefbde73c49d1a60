/**
 * Every open Server-Sent Events connection of the process, kept cheap so that 10,000 idle ones
 * cost little more than their sockets: no timer, promise or waiter per connection. Instead:
 * - one waiter per *shape* on the notifier; a wake-up pumps that shape's idle connections, and
 *   connections at the same offset share one read and one encoding (`BatchCache`), so each costs
 *   the round one write (docs/ARCHITECTURE.md I37);
 * - one ticker for the whole hub that closes connections past the SSE timeout (they are kept in
 *   opening order, so it stops at the first one still young) and writes the keep-alive comments.
 * Lost wake-ups cannot strand a connection: a pump reads up to the head as it is when it runs,
 * and data is readable before the notifier fires.
 */
import type { ServerResponse } from 'node:http'
import type { Offset } from '../protocol/offset.js'
import type { ActiveShape } from '../shapes/active-shape.js'
import { SSE_STATE, SseConnection, type BatchCache } from './sse-connection.js'
import type { SseFraming } from './sse-events.js'
import type { ShapeLogReader, ShapeLogWaiter } from './shape-log.js'

export interface SseOptions {
  /** The server ends a stream after this long; the client reconnects (docs/PROTOCOL.md: Server-Sent Events). */
  readonly timeoutMs: number
  /** A `: keep-alive` comment this often on every idle stream (docs/PROTOCOL.md: Server-Sent Events). */
  readonly keepAliveMs: number
  /** The `retry:` field: how soon a browser reconnects after a drop. */
  readonly retryMs: number
}

export const SSE_DEFAULTS: SseOptions = { timeoutMs: 60_000, keepAliveMs: 20_000, retryMs: 1_000 }

export interface SseHubDeps {
  readonly store: ShapeLogReader
  readonly notifier: ShapeLogWaiter
  readonly sse?: SseOptions
  /** Aborted when the server shuts down: every stream ends at once. */
  readonly shutdown?: AbortSignal
  readonly now?: () => number
}

/** How long one notifier wait of a shape's watcher lasts before it looks again. */
const WATCH_MS = 30_000

export class SseHub {
  readonly options: SseOptions
  readonly #store: ShapeLogReader
  readonly #notifier: ShapeLogWaiter
  readonly #now: () => number
  /** In opening order, which is also deadline order. */
  readonly #all = new Set<SseConnection>()
  readonly #byShape = new Map<number, Set<SseConnection>>()
  #deadlineTimer: NodeJS.Timeout | undefined
  #keepAliveTimer: NodeJS.Timeout | undefined
  #closed = false
  readonly #stopped = new AbortController()

  constructor(deps: SseHubDeps) {
    this.options = deps.sse ?? SSE_DEFAULTS
    this.#store = deps.store
    this.#notifier = deps.notifier
    this.#now = deps.now ?? Date.now
    deps.shutdown?.addEventListener('abort', () => this.close(), { once: true })
  }

  get size(): number {
    return this.#all.size
  }

  /**
   * Starts following `shape` from `after` on a response whose headers are written. `onClose`
   * runs once when the connection is gone, whoever ended it.
   */
  open(shape: ActiveShape, after: Offset, framing: SseFraming, res: ServerResponse, onClose?: () => void): SseConnection {
    const connection = new SseConnection(shape, after, framing, res, this.#store, this.#now())
    if (this.#closed) {
      connection.end()
      onClose?.()
      return connection
    }
    this.#all.add(connection)
    const id = shape.stored.id
    let peers = this.#byShape.get(id)
    const first = !peers
    if (!peers) this.#byShape.set(id, (peers = new Set()))
    peers.add(connection)
    if (first) void this.#watch(id, peers)
    res.once('close', () => {
      connection.closed()
      this.#all.delete(connection)
      peers.delete(connection)
      if (this.#all.size === 0) this.#stopTimers()
      onClose?.()
    })
    this.#startTimers()
    connection.pump()
    return connection
  }

  /** Ends every stream (server shutdown). */
  close(): void {
    this.#closed = true
    this.#stopped.abort()
    for (const connection of this.#all) connection.end()
    this.#stopTimers()
  }

  /**
   * One waiter per shape, for as long as the shape has connections. A wake-up writes to every
   * idle connection of the shape (a round); the next round waits at least as long as the last
   * one took. Under load, fan-out then keeps to about half of the CPU and each round carries
   * every transaction committed meanwhile, rather than back-to-back rounds of one transaction
   * each starving replication and storage (and, on a shared machine, the clients themselves).
   * With few connections a round takes microseconds and adds no delay.
   */
  async #watch(shapeId: number, peers: Set<SseConnection>): Promise<void> {
    let nextRoundAt = 0
    while (peers.size > 0 && !this.#closed) {
      await this.#notifier.wait(shapeId, WATCH_MS, this.#stopped.signal)
      const early = nextRoundAt - performance.now()
      if (early > 0) await new Promise((resolve) => setTimeout(resolve, early))
      const started = performance.now()
      const cache: BatchCache = new Map()
      for (const connection of peers) {
        if (connection.state === SSE_STATE.idle) connection.pump(cache)
      }
      const finished = performance.now()
      nextRoundAt = finished + (finished - started)
    }
    if (this.#byShape.get(shapeId) === peers) this.#byShape.delete(shapeId)
  }

  #startTimers(): void {
    if (this.#deadlineTimer) return
    const { timeoutMs, keepAliveMs } = this.options
    this.#deadlineTimer = setInterval(() => this.#closeExpired(), Math.min(1_000, Math.max(20, Math.floor(timeoutMs / 20))))
    this.#keepAliveTimer = setInterval(() => this.#keepAlive(), keepAliveMs)
    this.#deadlineTimer.unref()
    this.#keepAliveTimer.unref()
  }

  #stopTimers(): void {
    clearInterval(this.#deadlineTimer)
    clearInterval(this.#keepAliveTimer)
    this.#deadlineTimer = undefined
    this.#keepAliveTimer = undefined
  }

  #closeExpired(): void {
    const oldest = this.#now() - this.options.timeoutMs
    for (const connection of this.#all) {
      if (connection.openedAtMs > oldest) break
      // Batches are whole writes, so ending here never splits one.
      connection.end()
      this.#all.delete(connection)
    }
  }

  #keepAlive(): void {
    for (const connection of this.#all) connection.keepAlive()
  }
}
