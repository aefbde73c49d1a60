/** A counting semaphore: at most `permits` holders at once, the rest wait in arrival order. */
export class Semaphore {
  #free: number
  readonly #queue: (() => void)[] = []

  constructor(permits: number) {
    this.#free = permits
  }

  /** Permits not held right now. */
  get free(): number {
    return this.#free
  }

  /** How many are waiting for a permit. */
  get waiting(): number {
    return this.#queue.length
  }

  /**
   * Resolves with the function that gives the permit back (call it exactly once), or with
   * `undefined` when `signal` aborts first: the waiter then leaves the queue.
   */
  async acquire(signal?: AbortSignal): Promise<(() => void) | undefined> {
    if (signal?.aborted) return undefined
    if (this.#free > 0) this.#free--
    else {
      const granted = await new Promise<boolean>((resolve) => {
        const grant = () => {
          signal?.removeEventListener('abort', leave)
          resolve(true)
        }
        const leave = () => {
          const at = this.#queue.indexOf(grant)
          if (at >= 0) this.#queue.splice(at, 1)
          resolve(false)
        }
        this.#queue.push(grant)
        signal?.addEventListener('abort', leave, { once: true })
      })
      if (!granted) return undefined
    }
    let released = false
    return () => {
      if (released) return
      released = true
      const next = this.#queue.shift()
      if (next) next()
      else this.#free++
    }
  }
}
