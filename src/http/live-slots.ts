/**
 * Bounds the number of open live requests (long-poll and SSE): each holds a socket and a
 * waiter, so past the bound new ones get 503 with `retry-after` instead of exhausting the process.
 */
import { OverloadedError } from '../errors.js'
import type { Metrics } from '../metrics.js'

export class LiveSlots {
  #open = 0
  readonly #max: number
  readonly #metrics: Metrics | undefined

  constructor(max: number, metrics?: Metrics) {
    this.#max = max
    this.#metrics = metrics
  }

  get open(): number {
    return this.#open
  }

  /** Takes a slot; call the returned function exactly once when the request ends. */
  acquire(): () => void {
    if (this.#open >= this.#max) {
      throw new OverloadedError(`Too many live connections (SLUICE_MAX_LIVE_CONNECTIONS=${this.#max}); retry shortly.`)
    }
    this.#open++
    this.#metrics?.liveConnections.inc()
    let released = false
    return () => {
      if (released) return
      released = true
      this.#open--
      this.#metrics?.liveConnections.dec()
    }
  }
}
