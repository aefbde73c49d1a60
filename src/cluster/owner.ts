/**
 * The owner of a cluster of HTTP workers (`SLUICE_WORKERS` above 1; docs/ARCHITECTURE.md: Worker
 * processes, I27): the one process that runs replication, creates and drops shapes and writes
 * storage. Its services are the single process's, with the worker processes in place of the
 * HTTP listener, so they start last and stop first. The workers share the listening socket and
 * take its connections from the kernel. The owner feeds every worker the commits it makes
 * visible (`commit-feed.ts`), does what they ask of shapes, sums every worker's metrics for a
 * scrape (`metrics-sum.ts`), and forks a new worker for one that dies; a killed worker loses
 * nothing, since all it held was connections, and its clients reconnect to the others.
 */
import cluster, { type Worker } from 'node:cluster'
import type { Config } from '../config.js'
import type { Service } from '../lifecycle.js'
import type { Logger } from '../log.js'
import { startServing, type SluiceCore } from '../server.js'
import { CommitFeed } from './commit-feed.js'
import { FeedNotifier } from './feed-notifier.js'
import { isWorkerMessage, toWireError, type OwnerMessage, type ReplyMessage, type RequestMessage } from './messages.js'
import { MetricsSum } from './metrics-sum.js'

export interface Owner {
  /** Where the workers serve HTTP. */
  readonly url: string
  /** The process ids of the running workers. */
  workerPids(): number[]
  /** Stops the workers (each ends its requests), then replication, shapes and storage. */
  stop(): Promise<void>
}

type OwnerConfig = Config & { databaseUrl: string; workers: number }

export async function startOwner(config: OwnerConfig, log: Logger): Promise<Owner> {
  const notifier = new FeedNotifier()
  return startServing(config, log, { notifier }, async (services, core) => {
    const workers = new WorkerProcesses(config, core, log.child({ component: 'workers' }))
    notifier.onNotify = (id) => workers.feed.moved(id)
    await services.start(workers)
    return { url: workers.url, workerPids: () => workers.pids() }
  })
}

/** Past the workers' own shutdown time, how long the owner waits before killing one. */
const WORKER_EXIT_GRACE_MS = 2_000

/** How long a scrape waits for each worker's metrics: a stuck or dying worker must not hang it. */
const WORKER_METRICS_TIMEOUT_MS = 1_000

/** The HTTP worker processes as one service: started once every first worker listens. */
class WorkerProcesses implements Service {
  readonly name = 'http workers'
  readonly feed: CommitFeed
  readonly #metrics: MetricsSum
  readonly #config: OwnerConfig
  readonly #core: SluiceCore
  readonly #log: Logger
  readonly #running = new Set<Worker>()
  /** Workers that have had the feed of every shape: later feeds build on it. */
  readonly #fed = new Set<Worker>()
  #url: string | undefined
  #stopping = false

  constructor(config: OwnerConfig, core: SluiceCore, log: Logger) {
    this.#config = config
    this.#core = core
    this.#log = log
    const { store, manager } = core
    this.#metrics = new MetricsSum({ owner: core.metrics.registry, timeoutMs: WORKER_METRICS_TIMEOUT_MS, log })
    this.feed = new CommitFeed({
      store,
      byHandle: (handle) => manager.byHandle(handle),
      health: () => core.health(),
      broadcast: (message) => {
        for (const worker of this.#fed) send(worker, message)
      },
    })
  }

  get url(): string {
    if (this.#url === undefined) throw new Error('the HTTP workers are not listening')
    return this.#url
  }

  pids(): number[] {
    return [...this.#running].flatMap((worker) => (worker.process.pid === undefined ? [] : [worker.process.pid]))
  }

  async start(): Promise<void> {
    let waitingFor = this.#config.workers
    this.#url = await new Promise<string>((resolve, reject) => {
      const listening = (url: string) => {
        if (--waitingFor === 0) resolve(url)
      }
      const exited = (code: number | null, signal: string | null) =>
        reject(new Error(`an HTTP worker exited before all listened (code ${code}, signal ${signal}); its log says why`))
      // The kernel, not this process, hands connections to workers: in Node's round robin the
      // owner accepts a connection and sends it to a worker over IPC, and one sent as that worker
      // dies is lost with the message, its client left waiting with no answer and no reset (the
      // kill test saw it). A connection on the shared socket waits in the kernel's queue until a
      // live worker accepts it; a busy worker accepts fewer.
      cluster.schedulingPolicy = cluster.SCHED_NONE
      cluster.setupPrimary({ serialization: 'advanced' })
      for (let i = 0; i < this.#config.workers; i++) this.#fork(listening, exited)
    })
  }

  async stop(): Promise<void> {
    this.#stopping = true
    const exited = [...this.#running].map((worker) => new Promise<void>((resolve) => {
      if (worker.isDead()) return resolve()
      const timer = setTimeout(() => worker.process.kill('SIGKILL'), this.#config.shutdownTimeoutMs + WORKER_EXIT_GRACE_MS)
      worker.once('exit', () => {
        clearTimeout(timer)
        resolve()
      })
      send(worker, { kind: 'stop' })
    }))
    await Promise.all(exited)
    this.feed.stop()
  }

  /** `listening` and `exited` hear the first workers' start; later ones just serve. */
  #fork(listening: (url: string) => void, exited: (code: number | null, signal: string | null) => void): void {
    const worker = cluster.fork({ DATABASE_URL: this.#config.databaseUrl, SLUICE_DEMO: String(this.#config.demo) })
    this.#running.add(worker)
    let listened = false
    // Any other failure of the worker's process or channel: its exit (or the stop) deals with it;
    // unheard, the 'error' event would end the owner and every worker with it.
    worker.on('error', (error) => this.#log.warn({ pid: worker.process.pid, err: error.message }, 'an HTTP worker failed; it is replaced when it exits'))
    worker.on('message', (message: unknown) => {
      if (!isWorkerMessage(message)) return
      if (message.kind === 'ready') {
        send(worker, this.feed.everything())
        this.#fed.add(worker)
        this.#metrics.join(worker.id, { pid: worker.process.pid, send: (scrape) => send(worker, scrape) })
      } else if (message.kind === 'listening') {
        listened = true
        listening(message.url)
      }
      else if (message.kind === 'request') void this.#answer(worker, message)
      else if (message.kind === 'scraped') this.#metrics.onScraped(worker.id, message)
      else for (const handle of message.handles) this.#core.manager.byHandle(handle)
    })
    worker.once('exit', (code, signal) => {
      this.#running.delete(worker)
      this.#fed.delete(worker)
      this.#metrics.retire(worker.id)
      if (this.#stopping) return
      if (this.#url === undefined) {
        // A worker that failed is a start that failed (its log says why); one killed by a signal
        // failed nothing, and a start must not end for it (the soak's kill-worker fault did so):
        // another takes its place, and listens in its stead if it had not.
        if (signal === null) return exited(code, signal)
        this.#log.warn({ pid: worker.process.pid, signal }, 'an HTTP worker was killed while starting; starting another')
        return this.#fork(listened ? () => {} : listening, exited)
      }
      this.#log.warn({ pid: worker.process.pid, code, signal }, 'an HTTP worker exited; starting another')
      this.#fork(() => {}, () => {})
    })
  }

  async #answer(worker: Worker, { requestId, operation }: RequestMessage): Promise<void> {
    const { manager } = this.#core
    let reply: ReplyMessage = { kind: 'reply', requestId }
    try {
      if (operation.op === 'get-or-create') {
        const shape = await manager.getOrCreate(operation.definition, operation.table, { tables: operation.tables })
        reply = { kind: 'reply', requestId, shape: this.feed.stateOf(shape.stored.id, shape.stored.handle) }
        // A feed sent before the shape was registered (its snapshot ran ahead of its record's flush)
        // called it gone to every worker; nothing else would name it again until its next change.
        this.feed.moved(shape.stored.id)
      } else if (operation.op === 'replace') {
        await manager.mustRefetch(operation.definition, operation.table, operation.why, { tables: operation.tables })
      } else if (operation.op === 'metrics') {
        reply = { kind: 'reply', requestId, metrics: await this.#metrics.collect(worker.id, operation.own) }
      } else {
        const shape = manager.byHandle(operation.handle)
        if (shape) await manager.drop(shape, operation.reason)
      }
    } catch (error) {
      reply = { kind: 'reply', requestId, error: toWireError(error) }
    }
    send(worker, reply)
  }
}

/**
 * A worker killed a moment ago still looks connected until its channel's end is noticed: the write
 * then fails (EPIPE), which without a callback is an 'error' event that would end the owner (the
 * two-worker soak's worker kill did). Its exit, handled apart, starts another.
 */
function send(worker: Worker, message: OwnerMessage): void {
  if (worker.isConnected()) worker.send(message, undefined, undefined, () => undefined)
}
