/**
 * The server side of the `waiters` scenario, as a child process of its own (`--expose-gc`) so its
 * memory is only the server's: Sluice, or a raw `node:http` server that holds every request it
 * gets (a long-poll unanswered, an SSE stream after its headers) — the least a Node server holding
 * that many requests can cost. The parent talks to it over IPC (`WaiterServerMessage`).
 *
 * Started with `fork(SELF, ['raw'])` or `fork(SELF, ['sluice', databaseUrl])`.
 */
import { mkdtemp } from 'node:fs/promises'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

export const WAITER_SERVER = fileURLToPath(import.meta.url)

/** Parent → child. */
export type WaiterServerRequest =
  | { readonly type: 'count' }
  | { readonly type: 'memory' }
  /** Raw server only: answer every held request with `body` (the baseline for one commit). */
  | { readonly type: 'broadcast'; readonly body: string }

/** Child → parent. */
export type WaiterServerMessage =
  | { readonly type: 'ready'; readonly port: number }
  | { readonly type: 'count'; readonly waiting: number }
  | { readonly type: 'memory'; readonly rss: number; readonly heapUsed: number; readonly external: number }

/** Sluice's settings for the scenario: nothing expires or pings while the requests are held. */
export const HOLD_MS = 600_000

async function main(mode: string, databaseUrl: string | undefined): Promise<void> {
  const server = mode === 'raw' ? await startRaw() : await startSluiceChild(databaseUrl!)
  process.on('message', (message: WaiterServerRequest) => {
    void answer(server, message).then((reply) => reply && process.send!(reply))
  })
  process.send!({ type: 'ready', port: server.port } satisfies WaiterServerMessage)
}

interface Held {
  readonly port: number
  waiting(): Promise<number>
  broadcast?(body: string): void
}

async function answer(server: Held, message: WaiterServerRequest): Promise<WaiterServerMessage | undefined> {
  switch (message.type) {
    case 'count':
      return { type: 'count', waiting: await server.waiting() }
    case 'memory': {
      for (let i = 0; i < 3; i++) globalThis.gc?.()
      await new Promise((resolve) => setTimeout(resolve, 200))
      globalThis.gc?.()
      const { rss, heapUsed, external } = process.memoryUsage()
      return { type: 'memory', rss, heapUsed, external }
    }
    case 'broadcast':
      server.broadcast?.(message.body)
      return undefined
  }
}

async function startRaw(): Promise<Held> {
  const longPolls = new Set<ServerResponse>()
  const streams = new Set<ServerResponse>()
  const hold = (req: IncomingMessage, res: ServerResponse) => {
    const sse = req.url?.includes('live_sse=true') ?? false
    const set = sse ? streams : longPolls
    if (sse) {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'close' })
      res.flushHeaders()
    }
    set.add(res)
    res.once('close', () => set.delete(res))
  }
  const server = createServer(hold)
  server.keepAliveTimeout = HOLD_MS
  server.requestTimeout = 0
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    port: (server.address() as AddressInfo).port,
    waiting: () => Promise.resolve(longPolls.size + streams.size),
    broadcast(body: string) {
      const event = Buffer.from(`data: ${body}\n\n`)
      const answer = Buffer.from(`[${body}]`)
      for (const res of longPolls) {
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': answer.length })
        res.end(answer)
      }
      for (const res of streams) res.socket?.write(event)
    },
  }
}

async function startSluiceChild(databaseUrl: string): Promise<Held> {
  const { loadConfig } = await import('../../src/config.js')
  const { createLogger } = await import('../../src/log.js')
  const { startSluice } = await import('../../src/server.js')
  const suffix = Math.random().toString(16).slice(2, 10)
  const config = {
    ...loadConfig({}),
    port: 0,
    host: '127.0.0.1',
    dataDir: await mkdtemp(join(tmpdir(), 'sluice-bench-waiters-')),
    replicationSlot: `sluice_bench_waiters_${suffix}`,
    publication: `sluice_bench_waiters_${suffix}`,
    logLevel: 'silent' as const,
    maxLiveConnections: 1_000_000,
    longPollMs: HOLD_MS,
    sseTimeoutMs: HOLD_MS,
    sseKeepAliveMs: HOLD_MS,
    databaseUrl,
  }
  const sluice = await startSluice(config, createLogger(config.logLevel))
  const metricsUrl = `${sluice.url}/metrics`
  return {
    port: Number(new URL(sluice.url).port),
    async waiting() {
      const text = await (await fetch(metricsUrl)).text()
      return Number(/^sluice_live_connections (\d+)$/m.exec(text)?.[1] ?? 0)
    },
  }
}

if (process.argv[1] === WAITER_SERVER) {
  main(process.argv[2]!, process.argv[3]).catch((error: unknown) => {
    process.stderr.write(`waiter server: ${(error as Error).stack ?? String(error)}\n`)
    process.exit(1)
  })
}
