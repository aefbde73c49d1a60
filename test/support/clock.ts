/**
 * A clock a test moves by hand, for code that takes a `now()`: the test jumps past a TTL
 * instead of sleeping through it.
 */
export class ManualClock {
  #ms: number

  /** Starts at the wall clock's time: some code treats a time of 0 as "never" (lru-cache does). */
  constructor(startMs = Date.now()) {
    this.#ms = startMs
  }

  readonly now = (): number => this.#ms

  advance(ms: number): void {
    this.#ms += ms
  }
}
