/**
 * Live long-polls waiting at the head of their shape (docs/ARCHITECTURE.md I23). A waiting
 * request is parked here and its handler returns, so it holds no Hono context, promise chain,
 * timer or abort signal while it waits: only a `ParkedPoll` and its socket. As in `SseHub`:
 * - one notifier waiter per *shape*; a wake-up answers that shape's parked polls that now have
 *   something, and polls at the same offset share one read of the log;
 * - one timer for the whole hub, set for the oldest poll's deadline: every poll waits the same
 *   `longPollMs`, so parking order is deadline order;
 * - a closed socket frees its poll and live slot at once.
 * A parked poll is answered on the Node response directly, with the headers and body the
 * ordinary path builds (`respond` in `shape-route.ts`).
 */
import type { ServerResponse } from 'node:http'
import { MustRefetchError } from '../errors.js'
import type { Logger } from '../log.js'
import { OFFSET_NOW } from '../protocol/constants.js'
import { formatOffset, type Offset } from '../protocol/offset.js'
import { droppedError, type ActiveShape } from '../shapes/active-shape.js'
import { errorResponse } from './error-response.js'
import { sliceAt, type LogSlice } from './log-reader.js'
import { READ_MODE, WAIT } from './next-slice.js'
import type { ShapeRequest } from './shape-request.js'
import { replaceDropped, respond, type AnsweredRequest, type RequestedHandle, type ShapeRouteDeps } from './shape-route.js'

export interface LongPollHubDeps extends ShapeRouteDeps {
  /** Aborted when the server shuts down: every parked poll answers up-to-date at once. */
  readonly shutdown?: AbortSignal
  readonly log: Logger
}

/** How long one notifier wait of a shape's watcher lasts before it looks again. */
const WATCH_MS = 30_000

/** One waiting request: what its answer needs, and nothing of the request's parsing. */
class ParkedPoll implements AnsweredRequest {
  constructor(
    readonly shape: ActiveShape,
    readonly offset: Offset,
    readonly cursor: string | undefined,
    readonly handle: RequestedHandle,
    readonly ifNoneMatch: string | undefined,
    readonly common: Readonly<Record<string, string>>,
    readonly res: ServerResponse,
    readonly release: () => void,
    readonly deadlineMs: number,
  ) {}

  get live(): true {
    return true
  }
}

/**
 * Slices read during one round, by shape and offset: polls at the same position share one read.
 * `null`: nothing to answer yet; `undefined`: the read failed.
 */
type Round = Map<string, LogSlice | null | undefined>

export class LongPollHub {
  readonly #deps: LongPollHubDeps
  /** In parking order, which is also deadline order. */
  readonly #all = new Set<ParkedPoll>()
  readonly #byShape = new Map<number, Set<ParkedPoll>>()
  readonly #byResponse = new WeakMap<ServerResponse, ParkedPoll>()
  #deadlineTimer: NodeJS.Timeout | undefined
  #closed = false
  readonly #stopped = new AbortController()
  /** One listener shared by every parked response (`this` is the response). */
  readonly #onClose: (this: ServerResponse) => void

  constructor(deps: LongPollHubDeps) {
    this.#deps = deps
    const hub = this
    this.#onClose = function (this: ServerResponse) {
      const poll = hub.#byResponse.get(this)
      if (poll) hub.#forget(poll)
    }
    deps.shutdown?.addEventListener('abort', () => this.close(), { once: true })
  }

  get size(): number {
    return this.#all.size
  }

  /**
   * Parks a live long-poll that would wait at the head of `shape`, taking over `res` and
   * `release` (its live slot). False when it has an answer now, or waits for anything but a
   * change: the caller answers it the ordinary way.
   */
  park(
    shape: ActiveShape,
    request: ShapeRequest,
    ifNoneMatch: string | undefined,
    common: Readonly<Record<string, string>>,
    res: ServerResponse,
    release: () => void,
  ): boolean {
    if (this.#closed || request.offset === OFFSET_NOW || shape.dropped || res.destroyed) return false
    const next = readSlice(this.#deps, shape, request.offset, true)
    if (!next || !('wait' in next) || next.wait !== WAIT.change) return false
    const deadlineMs = Date.now() + this.#deps.longPollMs
    const poll = new ParkedPoll(shape, request.offset, request.cursor, request.handle, ifNoneMatch, common, res, release, deadlineMs)
    this.#all.add(poll)
    this.#byResponse.set(res, poll)
    const id = shape.stored.id
    let peers = this.#byShape.get(id)
    const first = !peers
    if (!peers) this.#byShape.set(id, (peers = new Set()))
    peers.add(poll)
    if (first) void this.#watch(id, peers)
    res.on('close', this.#onClose)
    this.#armDeadline()
    return true
  }

  /** Answers every parked poll with what it has now (server shutdown). */
  close(): void {
    this.#closed = true
    this.#stopped.abort()
    clearTimeout(this.#deadlineTimer)
    const round: Round = new Map()
    for (const poll of this.#all) this.#answer(poll, false, round)
  }

  /**
   * One waiter per shape, for as long as it has parked polls. A round answers the polls that
   * have something now; the next round waits at least as long as the last one took, so a busy
   * shape's fan-out leaves replication and storage their share of the CPU (as `SseHub` does).
   */
  async #watch(shapeId: number, peers: Set<ParkedPoll>): Promise<void> {
    let nextRoundAt = 0
    while (peers.size > 0 && !this.#closed) {
      await this.#deps.notifier.wait(shapeId, WATCH_MS, this.#stopped.signal)
      const early = nextRoundAt - performance.now()
      if (early > 0) await new Promise((resolve) => setTimeout(resolve, early))
      const started = performance.now()
      const round: Round = new Map()
      for (const poll of peers) this.#answer(poll, true, round)
      const finished = performance.now()
      nextRoundAt = finished + (finished - started)
    }
    if (this.#byShape.get(shapeId) === peers) this.#byShape.delete(shapeId)
  }

  /** Answers `poll` if it has an answer; `waitAtHead` false: an empty up-to-date will do. */
  #answer(poll: ParkedPoll, waitAtHead: boolean, round: Round): void {
    if (poll.res.destroyed) return this.#forget(poll)
    if (poll.shape.dropped) {
      this.#forget(poll)
      void this.#answerDropped(poll)
      return
    }
    // A deadline or shutdown round spans shapes: the key names the shape too.
    const key = `${poll.shape.stored.id}:${formatOffset(poll.offset)}${waitAtHead ? '' : '!'}`
    let slice = round.get(key)
    if (slice === undefined) {
      const next = readSlice(this.#deps, poll.shape, poll.offset, waitAtHead)
      round.set(key, (slice = next === undefined ? undefined : 'wait' in next ? null : next))
    }
    if (slice === undefined) {
      // The shape's log went from storage before this process heard it was dropped.
      this.#forget(poll)
      void this.#answerDropped(poll)
      return
    }
    if (slice === null) return
    this.#forget(poll)
    const response = respond(this.#deps, poll, poll.shape, poll.offset, slice, poll.ifNoneMatch)
    if (response.status === 304) writeResponse(poll, 304, response.headers, undefined)
    else writeResponse(poll, 200, response.headers, response.body)
  }

  async #answerDropped(poll: ParkedPoll): Promise<void> {
    try {
      const failure = droppedError(poll.shape)
      if (!(failure instanceof MustRefetchError) || failure.handle !== undefined) throw failure
      await replaceDropped(this.#deps, poll.shape.stored.definition, failure.message)
    } catch (error) {
      const response = errorResponse(error, this.#deps.log)
      writeResponse(poll, response.status, response.headers, response.body)
    }
  }

  #forget(poll: ParkedPoll): void {
    if (!this.#all.delete(poll)) return
    this.#byResponse.delete(poll.res)
    this.#byShape.get(poll.shape.stored.id)?.delete(poll)
    poll.release()
  }

  #armDeadline(): void {
    if (this.#deadlineTimer || this.#closed) return
    const oldest = this.#all.values().next()
    if (oldest.done) return
    this.#deadlineTimer = setTimeout(() => {
      this.#deadlineTimer = undefined
      this.#expire()
    }, Math.max(0, oldest.value.deadlineMs - Date.now()))
    this.#deadlineTimer.unref()
  }

  #expire(): void {
    const now = Date.now()
    const round: Round = new Map()
    for (const poll of this.#all) {
      if (poll.deadlineMs > now) break
      // A parked shape's snapshot is complete, so without waiting at the head every poll has an answer.
      this.#answer(poll, false, round)
    }
    this.#armDeadline()
  }
}

/**
 * The slice at `offset`, or undefined when the log cannot be read: an HTTP worker reads a shape
 * the owner has just deleted before its feed says so (docs/ARCHITECTURE.md I27).
 */
function readSlice(deps: LongPollHubDeps, shape: ActiveShape, offset: Offset, waitAtHead: boolean): ReturnType<typeof sliceAt> | undefined {
  try {
    return sliceAt(deps.store, shape, offset, READ_MODE.longPoll, waitAtHead)
  } catch (error) {
    deps.log.debug({ handle: shape.stored.handle, err: (error as Error).message }, 'a parked long-poll could not read its shape')
    return undefined
  }
}

function writeResponse(poll: ParkedPoll, status: number, headers: Readonly<Record<string, string>>, body: Buffer | string | undefined): void {
  if (poll.res.destroyed) return
  poll.res.writeHead(status, { ...poll.common, ...headers })
  poll.res.end(body)
}
