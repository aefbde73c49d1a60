/**
 * A TCP proxy in front of a server, so a test can cut live connections the way a network does
 * (both directions destroyed mid-stream), stall them (nothing passes, nothing closes), and see
 * what each connection's request said. Bytes are forwarded by hand rather than piped, so a
 * stall holds even while the other side drains.
 */
import net from 'node:net'

/** Picks connections by their first bytes (an HTTP request head, a PostgreSQL startup packet). */
export type ConnectionFilter = (firstBytes: string) => boolean

export interface TcpProxy {
  /** `http://127.0.0.1:<port>` of the proxy. */
  readonly url: string
  readonly port: number
  /** The request head (request line and headers) of every connection, in order. */
  readonly requests: string[]
  /** Destroys every open connection; returns how many there were. */
  cutAll(): number
  /** Destroys the open connections the filter picks; returns how many. */
  cut(filter: ConnectionFilter): number
  /** Holds the bytes of the connections the filter picks for `ms`; returns how many. */
  stall(ms: number, filter: ConnectionFilter): number
  close(): Promise<void>
}

interface Link {
  readonly client: net.Socket
  readonly upstream: net.Socket
  firstBytes: string
  stalled: boolean
}

export async function startTcpProxy(target: () => { host: string; port: number }): Promise<TcpProxy> {
  const open = new Set<Link>()
  const requests: string[] = []
  const timers = new Set<NodeJS.Timeout>()
  const server = net.createServer((client) => {
    const { host, port } = target()
    const link: Link = { client, upstream: net.connect(port, host), firstBytes: '', stalled: false }
    open.add(link)
    let head = ''
    client.on('data', (chunk: Buffer) => {
      if (link.firstBytes === '') link.firstBytes = chunk.toString('latin1')
      if (!head.includes('\r\n\r\n')) {
        head += chunk.toString('latin1')
        if (head.includes('\r\n\r\n')) requests.push(head.slice(0, head.indexOf('\r\n\r\n')))
      }
    })
    forward(link, client, link.upstream)
    forward(link, link.upstream, client)
    const drop = () => {
      open.delete(link)
      client.destroy()
      link.upstream.destroy()
    }
    for (const socket of [client, link.upstream]) {
      socket.on('error', drop)
      socket.on('close', drop)
    }
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as net.AddressInfo).port
  const picked = (filter: ConnectionFilter) => [...open].filter((link) => filter(link.firstBytes))
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    requests,
    cutAll() {
      const n = open.size
      for (const link of open) link.client.destroy()
      return n
    },
    cut(filter) {
      const links = picked(filter)
      for (const link of links) link.client.destroy()
      return links.length
    },
    stall(ms, filter) {
      const links = picked(filter)
      for (const link of links) {
        link.stalled = true
        link.client.pause()
        link.upstream.pause()
      }
      const timer = setTimeout(() => {
        timers.delete(timer)
        for (const link of links) {
          link.stalled = false
          link.client.resume()
          link.upstream.resume()
        }
      }, ms)
      timers.add(timer)
      return links.length
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const timer of timers) clearTimeout(timer)
        for (const link of open) link.client.destroy()
        server.close(() => resolve())
      }),
  }
}

/** `from` → `to` with backpressure; a stalled link stays paused until its stall ends. */
function forward(link: Link, from: net.Socket, to: net.Socket): void {
  from.on('data', (chunk: Buffer) => {
    if (!to.write(chunk)) from.pause()
  })
  to.on('drain', () => {
    if (!link.stalled) from.resume()
  })
  from.on('end', () => to.end())
}
