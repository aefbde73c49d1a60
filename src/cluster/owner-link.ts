/**
 * A worker's requests to the owner over IPC, each answered by one reply with its id. When the
 * owner is gone every request still waiting fails with a 503: the worker is about to exit.
 */
import { UnavailableError } from '../errors.js'
import type { ShapeHandle } from '../shapes/shape-handle.js'
import { fromWireError, type OwnerOperation, type ReplyMessage, type WorkerMessage } from './messages.js'

interface Pending {
  readonly resolve: (reply: ReplyMessage) => void
  readonly reject: (error: Error) => void
  readonly onArrival?: (reply: ReplyMessage) => void
}

/** How often the handles a worker served are reported to the owner (its eviction order). */
const TOUCH_EVERY_MS = 1_000

export class OwnerLink {
  readonly #send: (message: WorkerMessage) => void
  readonly #pending = new Map<number, Pending>()
  readonly #touched = new Set<ShapeHandle>()
  readonly #touchTimer: NodeJS.Timeout
  #nextId = 1
  #closed = false

  constructor(send: (message: WorkerMessage) => void) {
    this.#send = send
    this.#touchTimer = setInterval(() => this.#flushTouched(), TOUCH_EVERY_MS).unref()
  }

  /**
   * Asks the owner to do `operation`; rejects with the error the owner met, rebuilt. `onArrival`
   * takes a successful reply as it arrives, in order with the owner's other messages: the caller's
   * `await` resumes only after every message that arrived with the reply has been handled.
   */
  request(operation: OwnerOperation, onArrival?: (reply: ReplyMessage) => void): Promise<ReplyMessage> {
    if (this.#closed) return Promise.reject(ownerGone())
    const requestId = this.#nextId++
    return new Promise((resolve, reject) => {
      this.#pending.set(requestId, { resolve, reject, ...(onArrival && { onArrival }) })
      this.#send({ kind: 'request', requestId, operation })
    })
  }

  onReply(reply: ReplyMessage): void {
    const pending = this.#pending.get(reply.requestId)
    if (!pending) return
    this.#pending.delete(reply.requestId)
    if (reply.error) return pending.reject(fromWireError(reply.error))
    pending.onArrival?.(reply)
    pending.resolve(reply)
  }

  touched(handle: ShapeHandle): void {
    this.#touched.add(handle)
  }

  close(): void {
    this.#closed = true
    clearInterval(this.#touchTimer)
    for (const { reject } of this.#pending.values()) reject(ownerGone())
    this.#pending.clear()
  }

  #flushTouched(): void {
    if (this.#touched.size === 0 || this.#closed) return
    this.#send({ kind: 'touch', handles: [...this.#touched] })
    this.#touched.clear()
  }
}

function ownerGone(): UnavailableError {
  return new UnavailableError('This Sluice worker lost its owner process and is stopping; retry shortly.')
}
