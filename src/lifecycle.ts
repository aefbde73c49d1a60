/**
 * The lifecycle every long-lived part of Sluice shares (docs/ARCHITECTURE.md: Lifecycle, I24). A part
 * is started only once the parts it depends on run, and stopped before them: `server.ts` starts
 * services one at a time on a `ServiceStack`, and one `stop()` unwinds it in reverse, whether the
 * server is shutting down or a later service failed to start.
 */
import type { Logger } from './log.js'

export interface Service {
  /** For the log line of a stop that failed. */
  readonly name: string
  start(): Promise<void>
  /** Also called after `start()` rejected: it releases whatever the failed start acquired. */
  stop(): Promise<void>
}

export class ServiceStack {
  readonly #log: Logger
  readonly #started: Service[] = []

  constructor(log: Logger) {
    this.#log = log
  }

  /** Starts `service`; if that fails, it is stopped with the rest by `stop()`. */
  async start(service: Service): Promise<void> {
    this.#started.push(service)
    await service.start()
  }

  /**
   * Stops every service started, the last first. One that fails to stop is logged and the rest
   * still stop (a connection pool left open would keep the process alive); the first failure is
   * thrown once all have stopped.
   */
  async stop(): Promise<void> {
    let failure: { error: unknown } | undefined
    for (let service = this.#started.pop(); service; service = this.#started.pop()) {
      try {
        await service.stop()
      } catch (error) {
        this.#log.error({ err: error, service: service.name }, 'a service failed to stop')
        failure ??= { error }
      }
    }
    if (failure) throw failure.error
  }
}
