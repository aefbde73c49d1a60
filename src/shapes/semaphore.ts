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

  /** Resolves with the function that gives the permit back; call it exactly once. */
  async acquire(): Promise<() => void> {
    if (this.#free > 0) this.#free--
    else await new Promise<void>((resolve) => this.#queue.push(resolve))
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
