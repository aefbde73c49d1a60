/**
 * Wakes readers waiting on a shape's log (live requests, first-chunk waits). Waiters are
 * one-shot promises resolved together, so a burst of appends coalesces into one wake-up.
 */
export class ShapeNotifier {
  readonly #waiters = new Map<number, Set<() => void>>()

  /** Resolves on the next `notify(shapeId)` or after `timeoutMs`; `true` when notified. */
  wait(shapeId: number, timeoutMs: number, signal?: AbortSignal): Promise<boolean> {
    return new Promise((resolve) => {
      let set = this.#waiters.get(shapeId)
      if (!set) this.#waiters.set(shapeId, (set = new Set()))
      const waiters = set
      const done = (notified: boolean) => {
        clearTimeout(timer)
        signal?.removeEventListener('abort', onAbort)
        waiters.delete(wake)
        if (waiters.size === 0 && this.#waiters.get(shapeId) === waiters) this.#waiters.delete(shapeId)
        resolve(notified)
      }
      const wake = () => done(true)
      const onAbort = () => done(false)
      const timer = setTimeout(() => done(false), timeoutMs)
      waiters.add(wake)
      signal?.addEventListener('abort', onAbort, { once: true })
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
}
