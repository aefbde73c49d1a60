/**
 * Wakes readers waiting on a shape's log (live requests, first-chunk waits). Waiters are
 * one-shot promises resolved together, so a burst of appends coalesces into one wake-up.
 *
 * Many waiters share one signal (the SSE hub's stop signal across every watched shape, the
 * shutdown signal across non-live requests waiting for a snapshot): each signal gets a single
 * `abort` listener that ends all of its waiters, so any number of them stays one listener — an
 * AbortSignal with more than ten makes Node warn of a leak.
 */
export class ShapeNotifier {
  readonly #waiters = new Map<number, Set<() => void>>()
  readonly #onAbort = new WeakMap<AbortSignal, Set<() => void>>()

  /** Resolves on the next `notify(shapeId)` or after `timeoutMs`; `true` when notified. */
  wait(shapeId: number, timeoutMs: number, signal?: AbortSignal): Promise<boolean> {
    return new Promise((resolve) => {
      let set = this.#waiters.get(shapeId)
      if (!set) this.#waiters.set(shapeId, (set = new Set()))
      const waiters = set
      const done = (notified: boolean) => {
        clearTimeout(timer)
        if (signal) this.#unlisten(signal, onAbort)
        waiters.delete(wake)
        if (waiters.size === 0 && this.#waiters.get(shapeId) === waiters) this.#waiters.delete(shapeId)
        resolve(notified)
      }
      const wake = () => done(true)
      const onAbort = () => done(false)
      const timer = setTimeout(() => done(false), timeoutMs)
      waiters.add(wake)
      if (signal?.aborted) onAbort()
      else if (signal) this.#listen(signal, onAbort)
    })
  }

  notify(shapeId: number): void {
    const set = this.#waiters.get(shapeId)
    if (!set) return
    for (const wake of [...set]) wake()
  }

  waiting(shapeId: number): number {
    return this.#waiters.get(shapeId)?.size ?? 0
  }

  #listen(signal: AbortSignal, onAbort: () => void): void {
    let callbacks = this.#onAbort.get(signal)
    if (!callbacks) {
      const all = (callbacks = new Set())
      this.#onAbort.set(signal, all)
      signal.addEventListener('abort', () => {
        this.#onAbort.delete(signal)
        for (const callback of [...all]) callback()
      }, { once: true })
    }
    callbacks.add(onAbort)
  }

  #unlisten(signal: AbortSignal, onAbort: () => void): void {
    this.#onAbort.get(signal)?.delete(onAbort)
  }
}
