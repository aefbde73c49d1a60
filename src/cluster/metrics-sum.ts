/**
 * The machine's metrics, as the owner of the HTTP workers sums them for each scrape
 * (docs/ARCHITECTURE.md: Worker processes, I34). A scrape reaches one worker, which sends the owner
 * its own registry; the owner asks every other worker for theirs over IPC and answers with the sum
 * of all of them and its own: counters and gauges summed, histograms merged (prom-client's
 * aggregation), so a scrape shows the same totals whichever worker answers.
 *
 * A sum of counters must never go back: Prometheus reads a drop as a reset and `rate()` would count
 * the whole remaining sum as new. So the owner keeps each worker's counters and histograms as last
 * sent: a worker that does not answer within the timeout (stuck, or dying) is in the scrape with
 * those, and one that exits stays in every later scrape with them. What it counted after it last
 * sent them is lost; its gauges (connections, requests in flight) leave the sum, as they left the
 * machine. `sluice_workers_missing_from_scrape` says how many workers a scrape waited for in vain.
 */
import { AggregatorRegistry, Gauge, Registry } from 'prom-client'
import type { Logger } from '../log.js'
import type { ScrapedMessage, ScrapeMessage } from './messages.js'
import type { MetricsJson } from './owner-metrics.js'

/** A worker as the owner reaches it. */
export interface ScrapeTarget {
  readonly pid: number | undefined
  send(message: ScrapeMessage): void
}

/** A worker's registry; `late`: not in time; `gone`: it exited meanwhile. */
type Answer = MetricsJson | 'late' | 'gone'

export interface MetricsSumOptions {
  /** The owner's own registry. */
  readonly owner: Registry
  /** How long a scrape waits for the workers' registries. */
  readonly timeoutMs: number
  readonly log: Logger
}

export class MetricsSum {
  readonly #owner: Registry
  readonly #timeoutMs: number
  readonly #log: Logger
  /** Each worker that takes requests for its registry, with its counters and histograms as it last sent them. */
  readonly #workers = new Map<number, { readonly target: ScrapeTarget; counters: MetricsJson }>()
  readonly #asked = new Map<number, { readonly worker: number; readonly answer: (answer: Answer) => void }>()
  /** The last counters and histograms of the workers that exited, summed. */
  #retired: Promise<MetricsJson> = Promise.resolve([])
  #nextScrapeId = 1

  constructor(options: MetricsSumOptions) {
    this.#owner = options.owner
    this.#timeoutMs = options.timeoutMs
    this.#log = options.log
  }

  /** Worker `id` listens for `scrape` messages from now on. */
  join(id: number, target: ScrapeTarget): void {
    this.#workers.set(id, { target, counters: [] })
  }

  /** Worker `id` exited: its last counters stay in every sum; a scrape waiting for it waits no more. */
  retire(id: number): void {
    const worker = this.#workers.get(id)
    if (!worker) return
    this.#workers.delete(id)
    const last = worker.counters
    this.#retired = this.#retired.then((retired) => AggregatorRegistry.aggregate([retired, last]).getMetricsAsJSON())
    for (const [scrapeId, asked] of this.#asked) {
      if (asked.worker !== id) continue
      this.#asked.delete(scrapeId)
      asked.answer('gone')
    }
  }

  onScraped(id: number, { scrapeId, metrics }: ScrapedMessage): void {
    const asked = this.#asked.get(scrapeId)
    if (asked?.worker !== id) return
    this.#asked.delete(scrapeId)
    this.#remember(id, metrics)
    asked.answer(metrics)
  }

  /** The sum for a scrape that worker `asker` answers, `own` being its registry. */
  async collect(asker: number, own: MetricsJson): Promise<MetricsJson> {
    this.#remember(asker, own)
    const others = [...this.#workers.keys()].filter((id) => id !== asker)
    const scrapeIds = others.map(() => this.#nextScrapeId++)
    const answers = others.map((id, i) => this.#ask(id, scrapeIds[i]!))
    const timer = setTimeout(() => {
      for (const scrapeId of scrapeIds) {
        this.#asked.get(scrapeId)?.answer('late')
        this.#asked.delete(scrapeId)
      }
    }, this.#timeoutMs)
    const answered = await Promise.all(answers)
    clearTimeout(timer)
    // One synchronous step: a worker is counted live or among the retired, never both nor neither.
    const parts: (MetricsJson | Promise<MetricsJson>)[] = [this.#retired, this.#owner.getMetricsAsJSON()]
    if (this.#workers.has(asker)) parts.push(own)
    let missing = 0
    others.forEach((id, i) => {
      const worker = this.#workers.get(id)
      const answer = answered[i]!
      if (worker === undefined || answer === 'gone') return
      if (answer !== 'late') return void parts.push(answer)
      missing++
      parts.push(worker.counters)
      this.#log.warn({ pid: worker.target.pid, timeoutMs: this.#timeoutMs }, 'an HTTP worker did not send its metrics in time: this scrape has its last counters and lacks its gauges')
    })
    parts.push(missingGauge(missing))
    return AggregatorRegistry.aggregate(await Promise.all(parts)).getMetricsAsJSON()
  }

  #ask(id: number, scrapeId: number): Promise<Answer> {
    return new Promise((answer) => {
      this.#asked.set(scrapeId, { worker: id, answer })
      this.#workers.get(id)?.target.send({ kind: 'scrape', scrapeId })
    })
  }

  #remember(id: number, metrics: MetricsJson): void {
    const worker = this.#workers.get(id)
    if (worker) worker.counters = metrics.filter(isCumulative)
  }
}

/** Counters and histograms; prom-client's types call `type` an enum, but it holds the exposition's type name. */
function isCumulative(metric: MetricsJson[number]): boolean {
  const type = String(metric.type)
  return type === 'counter' || type === 'histogram'
}

function missingGauge(missing: number): Promise<MetricsJson> {
  const registry = new Registry()
  new Gauge({
    name: 'sluice_workers_missing_from_scrape',
    help: 'HTTP workers that did not send their metrics in time for this scrape: their counters are as they last sent them, their gauges are left out.',
    registers: [registry],
  }).set(missing)
  return registry.getMetricsAsJSON()
}
