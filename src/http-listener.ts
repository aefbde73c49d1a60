/**
 * The HTTP socket as a service (docs/ARCHITECTURE.md: Lifecycle): it starts last, once everything
 * it serves runs, and stops first, so no request reaches a part that has stopped.
 */
import { serve } from '@hono/node-server'
import { createServer, type IncomingMessage, type Server, type ServerOptions, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Config } from './config.js'
import type { Service } from './lifecycle.js'

type Listener = (req: IncomingMessage, res: ServerResponse) => void

export interface HttpListenerOptions {
  readonly fetch: Parameters<typeof serve>[0]['fetch']
  /** May answer a request itself (returning true) before Hono sees it. */
  readonly answerFirst: (req: IncomingMessage, res: ServerResponse) => boolean
  readonly config: Pick<Config, 'port' | 'host' | 'maxHeaderBytes' | 'shutdownTimeoutMs'>
  /** Aborted when stopping begins: waiting requests answer at once. */
  readonly shutdown: AbortController
}

export class HttpListener implements Service {
  readonly name = 'http'
  readonly #options: HttpListenerOptions
  #server: Server | undefined

  constructor(options: HttpListenerOptions) {
    this.#options = options
  }

  /** Base URL of the HTTP API, e.g. `http://127.0.0.1:3000`; only once started. */
  get url(): string {
    const address = this.#server?.address() as AddressInfo | null | undefined
    if (!address) throw new Error('the HTTP listener is not listening')
    const host = address.family === 'IPv6' ? `[${address.address}]` : address.address
    return `http://${host === '0.0.0.0' ? '127.0.0.1' : host === '[::]' ? '[::1]' : host}:${address.port}`
  }

  async start(): Promise<void> {
    this.#server = await listen(this.#options)
  }

  /**
   * Stops accepting, lets waiting long-polls answer up-to-date at once, and gives in-flight
   * requests a bounded time before cutting connections.
   */
  async stop(): Promise<void> {
    this.#options.shutdown.abort()
    const server = this.#server
    if (!server) return
    const closed = new Promise<void>((resolve) => server.close(() => resolve()))
    // Keep-alive sockets go idle as their last response ends; close each as soon as it does.
    server.closeIdleConnections()
    const sweeper = setInterval(() => server.closeIdleConnections(), 50)
    const timer = setTimeout(() => server.closeAllConnections(), this.#options.config.shutdownTimeoutMs)
    await closed
    clearInterval(sweeper)
    clearTimeout(timer)
  }
}

function listen({ fetch, answerFirst, config }: HttpListenerOptions): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = serve(
      {
        fetch,
        port: config.port,
        hostname: config.host,
        serverOptions: { maxHeaderSize: config.maxHeaderBytes, connectionsCheckingInterval: 1_000 },
        createServer: ((options: ServerOptions, hono: Listener) =>
          createServer(options, (req, res) => {
            if (!answerFirst(req, res)) hono(req, res)
          })) as typeof createServer,
      },
      () => resolve(server as Server),
    ) as Server
    // Slow or idle clients must not pin sockets: headers within 10 s, a whole request within 30 s.
    server.headersTimeout = 10_000
    server.requestTimeout = 30_000
    server.keepAliveTimeout = 5_000
    server.once('error', reject)
  })
}
