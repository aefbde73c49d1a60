/**
 * Prometheus metrics (`/metrics`). One registry per server rather than prom-client's global
 * one, so several servers in one process (tests) keep separate counts. Gauges that describe
 * state (shapes, storage, lag) are read from their owners at scrape time; they are registered
 * apart from the counters (`readStateFrom`, `readRequestsFrom`) because those owners count into
 * the counters, so they are built after them. With HTTP worker processes, the owner reads the
 * state and each worker its requests; a scrape, whichever worker answers it, is the owner's sum
 * of them all (`cluster/metrics-sum.ts`).
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client'

export interface MetricSources {
  shapes(): number
  /** Shape snapshots waiting for a connection (SLUICE_MAX_CONCURRENT_SNAPSHOTS). */
  snapshotsWaiting(): number
  storageBytes(): number
  /** Every change up to this LSN is durable in storage (the slot is never acknowledged past it). */
  durableLsn(): bigint
  /** WAL bytes PostgreSQL has written that storage does not hold yet; undefined if unknown. */
  replicationLagBytes(): Promise<number | undefined>
}

/** Non-live requests in flight, for new shapes (`initial`) and existing ones (`http/admission.ts`). */
export type RequestsInFlight = () => Readonly<Record<'initial' | 'existing', number>>

export class Metrics {
  readonly registry: Registry
  readonly transactions: Counter
  readonly changesAppended: Counter
  readonly responses: Counter<'status'>
  readonly cachedChunkResponses: Counter
  readonly liveConnections: Gauge
  readonly snapshotSeconds: Histogram
  readonly snapshotsRetaken: Counter
  readonly snapshotQueries: Counter

  /** `registry`: where they are kept and scraped from (a worker's answers the machine's sum). */
  constructor(registry = new Registry()) {
    this.registry = registry
    const registers = [registry]
    this.transactions = new Counter({
      name: 'sluice_transactions_total',
      help: 'Committed transactions received from replication.',
      registers,
    })
    this.changesAppended = new Counter({
      name: 'sluice_changes_appended_total',
      help: 'Log entries made durable across all shape logs (changes routed to shapes).',
      registers,
    })
    this.responses = new Counter({
      name: 'sluice_http_responses_total',
      help: 'HTTP responses by status code.',
      labelNames: ['status'],
      registers,
    })
    this.cachedChunkResponses = new Counter({
      name: 'sluice_http_cached_chunk_responses_total',
      help: 'Responses for complete chunks answered from memory by URL (included in sluice_http_responses_total).',
      registers,
    })
    this.liveConnections = new Gauge({
      name: 'sluice_live_connections',
      help: 'Open live requests (long-poll and SSE).',
      registers,
    })
    this.snapshotSeconds = new Histogram({
      name: 'sluice_snapshot_duration_seconds',
      help: 'Time to take a shape snapshot.',
      buckets: [0.01, 0.05, 0.1, 0.5, 1, 5, 15, 60, 300],
      registers,
    })
    this.snapshotsRetaken = new Counter({
      name: 'sluice_snapshots_retaken_total',
      help: 'Shape snapshots taken again because they did not yet show transactions already replicated (committed, still finishing in PostgreSQL).',
      registers,
    })
    this.snapshotQueries = new Counter({
      name: 'sluice_snapshot_queries_total',
      help: 'Snapshot queries run; each answers one or more shapes of one table (sluice_snapshot_duration_seconds counts shapes).',
      registers,
    })
  }

  /** Registers the gauge of the requests in flight, read at scrape time. */
  readRequestsFrom(requestsInFlight: RequestsInFlight): void {
    new Gauge({
      name: 'sluice_requests_in_flight',
      help: 'Non-live shape requests in flight by admission budget: `initial` (their shape is new) and `existing` (SLUICE_MAX_CONCURRENT_REQUESTS_*).',
      labelNames: ['kind'],
      registers: [this.registry],
      collect() {
        for (const [kind, n] of Object.entries(requestsInFlight())) this.set({ kind }, n)
      },
    })
  }

  /** Registers the gauges of the server's state, read from `sources` at scrape time. */
  readStateFrom(sources: MetricSources): void {
    const registers = [this.registry]
    new Gauge({
      name: 'sluice_shapes',
      help: 'Shapes currently served.',
      registers,
      collect() {
        this.set(sources.shapes())
      },
    })
    new Gauge({
      name: 'sluice_snapshots_waiting',
      help: 'Shape snapshots waiting for a connection (SLUICE_MAX_CONCURRENT_SNAPSHOTS); they are taken together when one frees up.',
      registers,
      collect() {
        this.set(sources.snapshotsWaiting())
      },
    })
    new Gauge({
      name: 'sluice_storage_bytes',
      help: 'Bytes used by shape logs in storage.',
      registers,
      collect() {
        this.set(sources.storageBytes())
      },
    })
    new Gauge({
      name: 'sluice_durable_lsn',
      help: 'LSN up to which every change is durable in storage, as a number (the slot is acknowledged at most this far).',
      registers,
      collect() {
        this.set(Number(sources.durableLsn()))
      },
    })
    new Gauge({
      name: 'sluice_replication_lag_bytes',
      help: 'WAL bytes written by PostgreSQL and not yet durable in Sluice.',
      registers,
      async collect() {
        const lag = await sources.replicationLagBytes()
        if (lag !== undefined) this.set(lag)
      },
    })
  }
}
