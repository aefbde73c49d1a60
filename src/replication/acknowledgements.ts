/**
 * Carries "durable up to here" from the router to the replication stream (docs/ARCHITECTURE.md
 * I5). The stream hands transactions to the router, so the router is built first and reports
 * here; the stream listens. Neither has to be built before the other exists.
 */
import type { Lsn } from '../pg/lsn.js'

export class Acknowledgements {
  readonly #listeners = new Set<(durable: Lsn) => void>()

  /** Every shape's entries up to `durable` are durable in storage. */
  report(durable: Lsn): void {
    for (const listener of this.#listeners) listener(durable)
  }

  listen(listener: (durable: Lsn) => void): () => void {
    this.#listeners.add(listener)
    return () => this.#listeners.delete(listener)
  }
}
