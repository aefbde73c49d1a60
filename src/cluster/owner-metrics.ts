/**
 * An HTTP worker's metrics registry (docs/ARCHITECTURE.md: Worker processes): a scrape answers the
 * worker's own metrics — what it served: responses, live connections, requests in flight — summed
 * with the owner's, asked of the owner over IPC at each scrape: replication, shapes, storage and
 * snapshots, which only the owner counts. Each metric is counted by one side only (the other
 * holds zero or does not register it), so the sum is the one value.
 */
import { AggregatorRegistry, Registry } from 'prom-client'

/** What `Registry.getMetricsAsJSON` gives, which crosses IPC as it is. */
export type MetricsJson = Awaited<ReturnType<Registry['getMetricsAsJSON']>>

export class RegistryWithOwner extends Registry {
  readonly #owner: () => Promise<MetricsJson>

  constructor(owner: () => Promise<MetricsJson>) {
    super()
    this.#owner = owner
  }

  override async metrics(): Promise<string> {
    const [own, owner] = await Promise.all([this.getMetricsAsJSON(), this.#owner()])
    return AggregatorRegistry.aggregate([own, owner]).metrics()
  }
}
