/**
 * A TCP proxy in front of a server, so a test can cut live connections the way a network does
 * (both directions destroyed mid-stream) and see what each connection's request said.
 */
import net from 'node:net'

export interface TcpProxy {
  /** `http://127.0.0.1:<port>` of the proxy. */
  readonly url: string
  /** The request head (request line and headers) of every connection, in order. */
  readonly requests: string[]
  /** Destroys every open connection; returns how many there were. */
  cutAll(): number
  close(): Promise<void>
}

export async function startTcpProxy(target: () => { host: string; port: number }): Promise<TcpProxy> {
  const open = new Set<net.Socket>()
  const requests: string[] = []
  const server = net.createServer((client) => {
    const { host, port } = target()
    const upstream = net.connect(port, host)
    open.add(client)
    let head = ''
    client.on('data', (chunk: Buffer) => {
      if (!head.includes('\r\n\r\n')) {
        head += chunk.toString('latin1')
        if (head.includes('\r\n\r\n')) requests.push(head.slice(0, head.indexOf('\r\n\r\n')))
      }
    })
    client.pipe(upstream)
    upstream.pipe(client)
    const drop = () => {
      open.delete(client)
      client.destroy()
      upstream.destroy()
    }
    client.on('error', drop)
    upstream.on('error', drop)
    client.on('close', drop)
    upstream.on('close', drop)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as net.AddressInfo).port
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    cutAll() {
      const n = open.size
      for (const socket of open) socket.destroy()
      return n
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of open) socket.destroy()
        server.close(() => resolve())
      }),
  }
}
