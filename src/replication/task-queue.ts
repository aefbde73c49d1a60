/**
 * The replication stream's queue: messages and keepalives are handled one at a time in arrival
 * order, so "idle at walEnd" is only reported after every transaction before walEnd was handed on.
 * A task that returns a promise (a transaction handed on, waiting for the router) holds back the
 * rest until it settles; that is the stream's backpressure, and the queue passes it on by pausing
 * its source while too many tasks wait (docs/ARCHITECTURE.md I11).
 *
 * Most tasks (a row change joining its transaction) finish at once, so they run right away rather
 * than each through a promise: tasks left waiting in a queue live long enough to be promoted by
 * the garbage collector, which cost more than running them.
 */

/** Where tasks come from: one replication connection. */
export interface TaskSource {
  pause(): void
  resume(): void
}

export interface TaskQueueOptions<S extends TaskSource> {
  /** A task of a source that is no longer current is dropped: the new source sends it again. */
  readonly isCurrent: (source: S) => boolean
  readonly onError: (source: S, error: unknown) => void
}

/** Pause the source while this many tasks wait… */
export const PAUSE_AT = 10_000
/** …and resume it once this few are left. */
export const RESUME_AT = 1_000
/** Handled tasks are cut from the front of the queue once this many have piled up. */
const COMPACT_AT = 4_096

export class TaskQueue<S extends TaskSource> {
  readonly #options: TaskQueueOptions<S>
  /** Tasks to run, from `#next` on. */
  readonly #tasks: { readonly source: S; readonly task: () => Promise<void> | void }[] = []
  #next = 0
  #running = false
  /** The source paused because too many of its tasks wait. */
  #paused: S | undefined

  constructor(options: TaskQueueOptions<S>) {
    this.#options = options
  }

  push(source: S, task: () => Promise<void> | void): void {
    this.#tasks.push({ source, task })
    if (this.#paused === undefined && this.#tasks.length - this.#next >= PAUSE_AT) {
      source.pause()
      this.#paused = source
    }
    if (!this.#running) void this.#run()
  }

  /** A new source replaces the old one: the old one's pause no longer matters. */
  forgetPaused(): void {
    this.#paused = undefined
  }

  async #run(): Promise<void> {
    this.#running = true
    while (this.#next < this.#tasks.length) {
      const { source, task } = this.#tasks[this.#next]!
      this.#tasks[this.#next++] = undefined!
      if (this.#options.isCurrent(source)) {
        try {
          const pending = task()
          if (pending) await pending
        } catch (error) {
          this.#options.onError(source, error)
        }
      }
      if (this.#paused !== undefined && this.#tasks.length - this.#next <= RESUME_AT) {
        if (this.#options.isCurrent(this.#paused)) this.#paused.resume()
        this.#paused = undefined
      }
      if (this.#next >= COMPACT_AT) {
        this.#tasks.splice(0, this.#next)
        this.#next = 0
      }
    }
    this.#tasks.length = 0
    this.#next = 0
    this.#running = false
  }
}
