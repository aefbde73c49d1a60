/**
 * An HTTP worker's metrics registry (docs/ARCHITECTURE.md: Worker processes, I34). The worker
 * counts what it serves (responses, live connections, requests in flight); the owner counts
 * replication, shapes, storage and snapshots. A scrape, which reaches whichever worker the kernel
 * hands its connection to, sends this registry to the owner and answers what the owner returns:
 * the sum over the owner and every worker (`metrics-sum.ts`), so no scrape depends on the worker
 * that answers it.
 */
import { AggregatorRegistry, Registry } from 'prom-client'

/** What `Registry.getMetricsAsJSON` gives, which crosses IPC as it is. */
export type MetricsJson = Awaited<ReturnType<Registry['getMetricsAsJSON']>>

export class RegistryWithOwner extends Registry {
  readonly #sum: (own: MetricsJson) => Promise<MetricsJson>

  /** `sum`: the machine's metrics, given this worker's. */
  constructor(sum: (own: MetricsJson) => Promise<MetricsJson>) {
    super()
    this.#sum = sum
  }

  override async metrics(): Promise<string> {
    return AggregatorRegistry.aggregate([await this.#sum(await this.getMetricsAsJSON())]).metrics()
  }
}
