/**
 * Plays the process supervisor (systemd's `Restart=always`): Sluice runs as a child process and
 * is started again, after a short pause and for up to three minutes, whenever it exits —
 * killed by a fault, or exiting by itself (a full data disk). Every exit is recorded, with
 * whether a fault asked for it.
 */
import type { ChildSluice } from '../test/support/child-sluice.js'

const RESTART_PAUSE_MS = 500
/** Past this, the supervisor gives up (the run then fails on recovery and convergence). */
const GIVE_UP_AFTER_MS = 180_000

export interface Exit {
  readonly atMs: number
  readonly code: number | null
  readonly signal: string | null
  /** The fault that caused it, or `unexpected`. */
  readonly cause: string
  /** The end of Sluice's output, for an unexpected exit. */
  readonly tail: string
}

export class Supervisor {
  readonly exits: Exit[] = []
  failedStarts = 0
  #expected: string | undefined
  #restarting: Promise<void> | undefined
  #stopping = false

  constructor(
    readonly sluice: ChildSluice,
    readonly startedAt: number,
  ) {
    sluice.onExit = (code, signal) => this.#onExit(code, signal)
  }

  async start(): Promise<void> {
    await this.sluice.start(120_000)
  }

  /** The next exit is caused by `cause` (undefined: by nothing the soak did). */
  expectExit(cause: string | undefined): void {
    this.#expected = cause
  }

  /** Resolves once Sluice is running again (at once if it is). */
  async running(): Promise<void> {
    while (this.#restarting) await this.#restarting
  }

  async stop(): Promise<void> {
    this.#stopping = true
    await this.#restarting
    await this.sluice.terminate()
  }

  #onExit(code: number | null, signal: string | null): void {
    // A start that failed (#restart counts it and tries again), or the end of the run.
    if (this.#restarting || this.#stopping) return
    const cause = this.#expected ?? 'unexpected'
    this.#expected = undefined
    this.exits.push({ atMs: Date.now() - this.startedAt, code, signal, cause, tail: cause === 'unexpected' ? this.sluice.output.slice(-3_000) : '' })
    this.#restarting = this.#restart().finally(() => (this.#restarting = undefined))
  }

  async #restart(): Promise<void> {
    const giveUpAt = Date.now() + GIVE_UP_AFTER_MS
    while (Date.now() < giveUpAt) {
      await new Promise((resolve) => setTimeout(resolve, RESTART_PAUSE_MS))
      if (this.#stopping) return
      try {
        await this.sluice.start(120_000)
        return
      } catch {
        // Still failing (say, the disk is still full): the next attempt follows the pause.
        this.failedStarts++
        await this.sluice.kill()
      }
    }
  }
}
