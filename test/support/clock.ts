/**
 * A clock a test moves by hand, for code that takes a `now()`: the test jumps past a TTL or a
 * report interval instead of sleeping through it, and `read()` tells it when the code has looked.
 */
import { waitFor } from './wait.js'

export class ManualClock {
  #ms: number
  #reads = 0

  /** Starts at the wall clock's time: some code treats a time of 0 as "never" (lru-cache does). */
  constructor(startMs = Date.now()) {
    this.#ms = startMs
  }

  readonly now = (): number => {
    this.#reads++
    return this.#ms
  }

  advance(ms: number): void {
    this.#ms += ms
  }

  /** Resolves once the code has read the clock again, so it has seen the time as it is now. */
  async read(): Promise<void> {
    const target = this.#reads + 1
    await waitFor(() => {
      if (this.#reads < target) throw new Error(`the clock was not read again (${this.#reads} reads so far)`)
    }, 15_000, 5)
  }
}
