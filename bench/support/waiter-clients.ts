/**
 * A load generator for the `waiters` scenario: many live requests held open at little cost per
 * connection (a raw socket that writes one HTTP/1.1 request; no fetch, no parser), from several
 * loopback source addresses (127.0.0.x) so that the count is not bounded by one address's
 * ephemeral ports. Each connection notes when the first bytes of the commit reach it: for SSE the
 * first `data:` after the headers, for a long-poll its response.
 *
 * Run as a child process (`fork(WAITER_CLIENTS)`), driven over IPC (`WaiterClientsRequest`).
 */
import net from 'node:net'
import { fileURLToPath } from 'node:url'

export const WAITER_CLIENTS = fileURLToPath(import.meta.url)

export interface OpenRequest {
  readonly type: 'open'
  readonly port: number
  /** A request target per kind; connection i is SSE when `i % 2 === 1` (half and half). */
  readonly longPollPath: string
  readonly ssePath: string
  readonly count: number
  /** Source addresses to spread connections over. */
  readonly localAddresses: readonly string[]
  /** Added to `i` for the long-poll/SSE alternation, so several generators keep the mix even. */
  readonly firstIndex: number
}

export type WaiterClientsRequest =
  | OpenRequest
  /** Reply once every connection got `marker`, or after `timeoutMs`, with the arrival times. */
  | { readonly type: 'collect'; readonly marker: string; readonly timeoutMs: number }
  | { readonly type: 'close' }

export type WaiterClientsMessage =
  /** `retries`: requests sent again after a 408, since the process started. */
  | { readonly type: 'opened'; readonly open: number; readonly retries: number }
  | {
      readonly type: 'collected'
      /** Wall-clock milliseconds (`performance.timeOrigin + performance.now()`) per connection that got the marker. */
      readonly arrivals: number[]
      readonly missing: number
      readonly errors: number
    }

/** How many connections are being opened at once. */
const OPEN_BATCH = 100

/**
 * A request Node's server answered 408 without reading it (its headers came later than
 * `headersTimeout` after the connection opened: on a loaded machine the generator can be that
 * slow to get to a new socket). The request is sent again on a new connection, and counted.
 */
const TOO_SLOW = 'HTTP/1.1 408'
let retries = 0

class Waiter {
  #seen = ''
  #headersDone = false
  socket: net.Socket
  arrivedAt: number | undefined
  failed = false

  constructor(
    readonly connect: () => net.Socket,
    readonly request: string,
    readonly sse: boolean,
    readonly onChange: () => void,
  ) {
    this.socket = connect()
  }

  /** SSE: resolves once the headers arrived; a long-poll: once its request is written. */
  start(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.socket.once('error', (error) => {
        this.failed = true
        reject(error)
      })
      this.socket.on('data', (chunk: Buffer) => {
        this.#seen += chunk.toString('latin1')
        if (this.#seen.startsWith(TOO_SLOW)) return this.#again(resolve, reject)
        if (this.sse && !this.#headersDone) {
          if (!this.#seen.startsWith('HTTP/1.1 200')) return reject(new Error(`unexpected answer: ${this.#seen.slice(0, 200)}`))
          const end = this.#seen.indexOf('\r\n\r\n')
          if (end < 0) return
          this.#headersDone = true
          this.#seen = this.#seen.slice(end + 4)
          resolve()
        }
        this.onChange()
      })
      this.socket.write(this.request, () => {
        if (!this.sse) resolve()
      })
    })
  }

  #again(resolve: () => void, reject: (error: unknown) => void): void {
    retries++
    this.socket.destroy()
    this.#seen = ''
    this.socket = this.connect()
    this.start().then(resolve, reject)
  }

  /** True when this call saw the marker arrive. */
  check(marker: string): boolean {
    if (this.arrivedAt !== undefined || !this.#seen.includes(marker)) return false
    this.arrivedAt = performance.timeOrigin + performance.now()
    this.#seen = ''
    return true
  }
}

const waiters: Waiter[] = []
let marker: string | undefined
let onArrival: (() => void) | undefined

async function open(request: OpenRequest): Promise<void> {
  for (let i = 0; i < request.count; i += OPEN_BATCH) {
    const batch: Promise<void>[] = []
    for (let j = i; j < Math.min(i + OPEN_BATCH, request.count); j++) {
      const sse = (request.firstIndex + j) % 2 === 1
      const localAddress = request.localAddresses[j % request.localAddresses.length]!
      const connect = () => net.connect({ port: request.port, host: '127.0.0.1', localAddress })
      const accept = sse ? 'Accept: text/event-stream\r\n' : ''
      const text = `GET ${sse ? request.ssePath : request.longPollPath} HTTP/1.1\r\nHost: 127.0.0.1\r\n${accept}\r\n`
      const waiter: Waiter = new Waiter(connect, text, sse, () => {
        if (marker !== undefined && waiter.check(marker)) onArrival?.()
      })
      waiters.push(waiter)
      batch.push(waiter.start())
    }
    await Promise.all(batch)
  }
}

function collect(wanted: string, timeoutMs: number): Promise<WaiterClientsMessage> {
  marker = wanted
  return new Promise((resolve) => {
    let arrived = 0
    const finish = () => {
      clearTimeout(timer)
      onArrival = undefined
      const arrivals = waiters.flatMap((w) => (w.arrivedAt === undefined ? [] : [w.arrivedAt]))
      resolve({ type: 'collected', arrivals, missing: waiters.length - arrivals.length, errors: waiters.filter((w) => w.failed).length })
    }
    const timer = setTimeout(finish, timeoutMs)
    // Whatever arrived before the request to collect counts too.
    for (const waiter of waiters) waiter.check(wanted)
    arrived = waiters.filter((w) => w.arrivedAt !== undefined).length
    onArrival = () => {
      if (++arrived === waiters.length) finish()
    }
    if (arrived === waiters.length) finish()
  })
}

async function handle(message: WaiterClientsRequest): Promise<void> {
  switch (message.type) {
    case 'open':
      await open(message)
      process.send!({ type: 'opened', open: waiters.length, retries } satisfies WaiterClientsMessage)
      return
    case 'collect':
      process.send!(await collect(message.marker, message.timeoutMs))
      return
    case 'close':
      for (const waiter of waiters) waiter.socket.destroy()
      process.exit(0)
  }
}

if (process.argv[1] === WAITER_CLIENTS) {
  process.on('message', (message: WaiterClientsRequest) => {
    handle(message).catch((error: unknown) => {
      process.stderr.write(`waiter clients: ${(error as Error).stack ?? String(error)}\n`)
      process.exit(1)
    })
  })
}
