/**
 * The owner's sum of the machine's metrics for a scrape (docs/ARCHITECTURE.md I34), with workers
 * on a fake IPC channel: every worker's registry and the owner's are summed, the worker answering
 * the scrape counted once; a worker that does not answer in time is in it with its last counters
 * and without its gauges, and does not hold the scrape past the timeout; a worker that exits keeps
 * its last counters in every later sum, so totals never go back.
 */
import { deserialize, serialize } from 'node:v8'
import { AggregatorRegistry, Counter, Registry } from 'prom-client'
import { describe, expect, it } from 'vitest'
import type { ScrapeMessage } from '../src/cluster/messages.js'
import { MetricsSum } from '../src/cluster/metrics-sum.js'
import type { MetricsJson } from '../src/cluster/owner-metrics.js'
import { createLogger } from '../src/log.js'
import { Metrics } from '../src/metrics.js'

const log = createLogger('silent')

/** A worker process as the owner reaches it: its registry, and whether it answers. */
class FakeWorker {
  readonly metrics = new Metrics()
  answers = true
  asked = 0
  /** Scrapes it was asked for and has not answered. */
  readonly unanswered: ScrapeMessage[] = []

  constructor(
    readonly id: number,
    readonly sum: MetricsSum,
  ) {
    sum.join(id, { pid: 1000 + id, send: (message) => this.#receive(message) })
  }

  /** Its registry as it crosses IPC: a copy (prom-client's JSON holds the counters' live values). */
  async own(): Promise<MetricsJson> {
    return deserialize(serialize(await this.metrics.registry.getMetricsAsJSON())) as MetricsJson
  }

  /** Answers what it was asked and left unanswered (a worker that was stuck). */
  async answerLate(): Promise<void> {
    for (const message of this.unanswered.splice(0)) this.sum.onScraped(this.id, { kind: 'scraped', scrapeId: message.scrapeId, metrics: await this.own() })
  }

  #receive(message: ScrapeMessage): void {
    this.asked++
    if (!this.answers) return void this.unanswered.push(message)
    void this.own().then((metrics) => this.sum.onScraped(this.id, { kind: 'scraped', scrapeId: message.scrapeId, metrics }))
  }
}

function setUp(timeoutMs: number) {
  const owner = new Registry()
  new Counter({ name: 'sluice_transactions_total', help: 'owner', registers: [owner] }).inc(3)
  const sum = new MetricsSum({ owner, timeoutMs, log })
  const workers = [1, 2, 3].map((id) => new FakeWorker(id, sum))
  /** A scrape answered by `asker`, as its `/metrics` renders it. */
  const scrape = async (asker: FakeWorker) => AggregatorRegistry.aggregate([await sum.collect(asker.id, await asker.own())]).metrics()
  return { sum, workers, scrape }
}

function value(text: string, series: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `))
  expect(line, `${series} in\n${text}`).toBeDefined()
  return Number(line!.slice(series.length + 1))
}

const RESPONSES = 'sluice_http_responses_total{status="200"}'
const LIVE = 'sluice_live_connections'
const MISSING = 'sluice_workers_missing_from_scrape'

describe('the sum of the machine’s metrics', () => {
  it('sums the owner’s and every worker’s, the one answering the scrape counted once', async () => {
    const { workers, scrape } = setUp(60_000)
    const [a, b, c] = workers as [FakeWorker, FakeWorker, FakeWorker]
    a.metrics.responses.inc({ status: '200' }, 1)
    b.metrics.responses.inc({ status: '200' }, 10)
    c.metrics.responses.inc({ status: '200' }, 100)
    a.metrics.liveConnections.set(2)
    c.metrics.liveConnections.set(5)
    a.metrics.snapshotSeconds.observe(0.02)
    b.metrics.snapshotSeconds.observe(2)
    for (const asker of workers) {
      const text = await scrape(asker)
      expect(value(text, RESPONSES)).toBe(111)
      expect(value(text, LIVE)).toBe(7)
      expect(value(text, 'sluice_transactions_total')).toBe(3)
      expect(value(text, 'sluice_snapshot_duration_seconds_count')).toBe(2)
      expect(value(text, 'sluice_snapshot_duration_seconds_bucket{le="0.05"}')).toBe(1)
      expect(value(text, MISSING)).toBe(0)
    }
    // Each scrape asked the two others, never the worker answering it.
    expect(workers.map((w) => w.asked)).toEqual([2, 2, 2])
  })

  it('ends a scrape at the timeout without a worker that does not answer, keeping its last counters', async () => {
    const timeoutMs = 200
    const { workers, scrape } = setUp(timeoutMs)
    const [a, b, c] = workers as [FakeWorker, FakeWorker, FakeWorker]
    c.metrics.responses.inc({ status: '200' }, 100)
    c.metrics.liveConnections.set(5)
    expect(value(await scrape(a), RESPONSES)).toBe(100)

    // Stuck: what it counts from now on is not seen, nor are its gauges.
    c.answers = false
    c.metrics.responses.inc({ status: '200' }, 1_000)
    a.metrics.responses.inc({ status: '200' }, 1)
    b.metrics.liveConnections.set(1)
    const started = Date.now()
    const text = await scrape(a)
    expect(Date.now() - started).toBeGreaterThanOrEqual(timeoutMs - 5)
    expect(value(text, RESPONSES)).toBe(101)
    expect(value(text, LIVE)).toBe(1)
    expect(value(text, MISSING)).toBe(1)

    // Its late answer finds no scrape waiting; the next scrape it answers in time counts it all.
    await c.answerLate()
    c.answers = true
    const after = await scrape(b)
    expect(value(after, RESPONSES)).toBe(1_101)
    expect(value(after, LIVE)).toBe(6)
    expect(value(after, MISSING)).toBe(0)
  })

  it('keeps the last counters of a worker that exited, and a scrape waiting for it stops waiting', async () => {
    const { sum, workers, scrape } = setUp(60_000)
    const [a, b, c] = workers as [FakeWorker, FakeWorker, FakeWorker]
    a.metrics.responses.inc({ status: '200' }, 1)
    c.metrics.responses.inc({ status: '200' }, 100)
    c.metrics.liveConnections.set(5)
    expect(value(await scrape(a), RESPONSES)).toBe(101)

    // It dies while a scrape waits for it: the scrape ends then, not at the timeout (a minute).
    c.answers = false
    const waiting = scrape(a)
    await expect.poll(() => c.unanswered.length).toBe(1)
    sum.retire(c.id)
    const text = await waiting
    expect(value(text, RESPONSES)).toBe(101)
    expect(value(text, LIVE)).toBe(0)
    expect(value(text, MISSING)).toBe(0)

    // And in every later scrape, with those of another worker gone since.
    b.metrics.responses.inc({ status: '200' }, 10)
    expect(value(await scrape(a), RESPONSES)).toBe(111)
    sum.retire(b.id)
    a.metrics.responses.inc({ status: '200' }, 1)
    expect(value(await scrape(a), RESPONSES)).toBe(112)
  })
})
