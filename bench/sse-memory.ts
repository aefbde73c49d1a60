/**
 * connections: resident memory per idle Server-Sent Events connection at 10,000 connections,
 * Sluice against a raw `node:http` SSE server measured in the same run (goal: ≤ 1.5×).
 *
 * Each server runs in its own child process (`--expose-gc`), so the 10,000 client sockets of
 * this process never count. A child reports its RSS after `gc()` with no connection, then again
 * with every connection open and idle (each has had its response headers); the difference divided by
 * the number of connections is the cost of one. Sluice's connections are what
 * `@electric-sql/client` opens at the head (`handle`, `offset`, `live=true&live_sse=true`), which
 * Sluice, as Electric, answers with headers and no event until a change; the raw server answers
 * headers and one event and then holds the socket, with one shared
 * keep-alive timer — the least a Node SSE server can do.
 *
 * Run alone: `node --import tsx bench/sse-memory.ts` (BENCH_SSE_CONNECTIONS to change 10,000).
 */
import { fork, type ChildProcess } from 'node:child_process'
import { chmod, mkdtemp, rm } from 'node:fs/promises'
import { createServer } from 'node:http'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import pg from 'pg'
import { startEmbeddedPostgres } from '../src/pg/embedded.js'
import { freePort } from '../src/pg/free-port.js'

/** A result row in the shape `npm run bench` (bench/run.ts) reads from scenario files. */
export interface SseMemoryRow {
  readonly scenario: string
  readonly measure: string
  readonly value: number
  readonly unit: string
  readonly baseline: { readonly label: string; readonly value: number; readonly unit: string }
  readonly goal: { readonly on: 'ratio'; readonly op: '<='; readonly target: number }
  readonly note: string
}

const CHILD_FLAG = '--sse-memory-child'
const SELF = fileURLToPath(import.meta.url)

interface ChildReady {
  readonly port: number
}
interface ChildMemory {
  readonly rss: number
  readonly heapUsed: number
}

export async function runSseMemoryBench(): Promise<SseMemoryRow[]> {
  const connections = Number(process.env['BENCH_SSE_CONNECTIONS'] ?? 10_000)
  // Its own small PostgreSQL: the harness gives external scenarios no cluster.
  const dir = await mkdtemp(join(tmpdir(), 'sluice-bench-sse-pg-'))
  await chmod(dir, 0o755)
  const cluster = await startEmbeddedPostgres({ dir, port: await freePort() })
  try {
    const pool = new pg.Pool({ connectionString: cluster.url, max: 2 })
    try {
      await pool.query(`CREATE TABLE items (id bigint PRIMARY KEY, title text NOT NULL)`)
      await pool.query(`INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 100) g`)
    } finally {
      await pool.end()
    }

    progress(`raw node:http SSE server: ${connections.toLocaleString('en-US')} idle connections`)
    const raw = await measure(['raw'], connections, () => '/sse')
    progress(`raw: ${round(kib(raw.perConnection))} KiB per connection`)

    progress(`Sluice: ${connections.toLocaleString('en-US')} idle SSE connections`)
    const sluice = await measure(['sluice', cluster.url], connections, async (port) => {
      // The path @electric-sql/client takes once up to date: handle + offset, live over SSE.
      const { handle, offset } = await headOf(`http://127.0.0.1:${port}/v1/shape?table=items`)
      return `/v1/shape?table=items&handle=${handle}&offset=${offset}&live=true&live_sse=true&cursor=0`
    })
    progress(`Sluice: ${round(kib(sluice.perConnection))} KiB per connection (JS heap ${round(kib(sluice.heapPerConnection))} KiB)`)

    const count = connections.toLocaleString('en-US')
    return [
      {
        scenario: 'connections',
        measure: `resident memory per idle SSE connection (${count} open)`,
        value: round(kib(sluice.perConnection)),
        unit: 'KiB',
        baseline: { label: 'raw node:http SSE server', value: round(kib(raw.perConnection)), unit: 'KiB' },
        goal: { on: 'ratio', op: '<=', target: 1.5 },
        note: `RSS ${mib(sluice.before)} → ${mib(sluice.after)} MiB (raw ${mib(raw.before)} → ${mib(raw.after)} MiB); JS heap ${round(kib(sluice.heapPerConnection))} vs ${round(kib(raw.heapPerConnection))} KiB per connection`,
      },
    ]
  } finally {
    await cluster.stop()
    await rm(dir, { recursive: true, force: true })
  }
}

interface Measured {
  readonly before: number
  readonly after: number
  readonly perConnection: number
  readonly heapPerConnection: number
}

async function measure(args: string[], connections: number, pathFor: (port: number) => string | Promise<string>): Promise<Measured> {
  const child = fork(SELF, [CHILD_FLAG, ...args], { execArgv: ['--import', 'tsx', '--expose-gc'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  const sockets: net.Socket[] = []
  try {
    const { port } = await next<ChildReady>(child)
    const path = await pathFor(port)
    // Warm up: a few connections, so lazily built code paths are not counted per connection.
    for (const socket of await openMany(port, path, 50)) socket.destroy()
    const before = await ask<ChildMemory>(child)
    sockets.push(...(await openMany(port, path, connections)))
    const after = await ask<ChildMemory>(child)
    return {
      before: before.rss,
      after: after.rss,
      perConnection: (after.rss - before.rss) / connections,
      heapPerConnection: (after.heapUsed - before.heapUsed) / connections,
    }
  } finally {
    for (const socket of sockets) socket.destroy()
    const exited = new Promise((resolve) => child.once('exit', resolve))
    child.kill()
    await exited
  }
}

/** Opens `n` SSE connections, 500 at a time, each resolved once its first event arrived. */
async function openMany(port: number, path: string, n: number): Promise<net.Socket[]> {
  const sockets: net.Socket[] = []
  for (let i = 0; i < n; i += 500) {
    const batch = Array.from({ length: Math.min(500, n - i) }, () => openOne(port, path))
    sockets.push(...(await Promise.all(batch)))
  }
  return sockets
}

function openOne(port: number, path: string): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1')
    let seen = ''
    const onData = (chunk: Buffer) => {
      seen += chunk.toString('latin1')
      if (!seen.startsWith('HTTP/1.1 200')) return reject(new Error(`unexpected answer: ${seen.slice(0, 200)}`))
      if (seen.includes('\r\n\r\n')) {
        socket.off('data', onData)
        socket.on('data', () => {}) // keep reading keep-alives
        resolve(socket)
      }
    }
    socket.on('data', onData)
    socket.once('error', reject)
    socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n`)
  })
}

async function headOf(shapeUrl: string): Promise<{ handle: string; offset: string }> {
  let handle = ''
  let offset = '-1'
  for (;;) {
    const url = `${shapeUrl}&offset=${offset}${handle ? `&handle=${handle}` : ''}`
    const response = await fetch(url)
    await response.arrayBuffer()
    handle = response.headers.get('electric-handle')!
    offset = response.headers.get('electric-offset')!
    if (response.headers.has('electric-up-to-date')) return { handle, offset }
  }
}

function next<T>(child: ChildProcess): Promise<T> {
  return new Promise((resolve, reject) => {
    child.once('message', (message) => resolve(message as T))
    child.once('exit', (code) => reject(new Error(`bench child exited (${code})`)))
  })
}

function ask<T>(child: ChildProcess): Promise<T> {
  const answer = next<T>(child)
  child.send('measure')
  return answer
}

const kib = (bytes: number) => bytes / 1024
const mib = (bytes: number) => (bytes / 1024 ** 2).toFixed(0)
const round = (n: number) => Math.round(n * 100) / 100
const progress = (text: string) => process.stdout.write(`  ${text}\n`)

// --- the child processes -------------------------------------------------------------------

async function runChild(mode: string, databaseUrl: string | undefined): Promise<void> {
  const port = mode === 'raw' ? await startRawServer() : await startSluiceServer(databaseUrl!)
  process.on('message', () => {
    for (let i = 0; i < 3; i++) globalThis.gc?.()
    setTimeout(() => {
      globalThis.gc?.()
      const { rss, heapUsed } = process.memoryUsage()
      process.send!({ rss, heapUsed } satisfies ChildMemory)
    }, 500)
  })
  process.send!({ port } satisfies ChildReady)
}

/** The least an SSE server in Node does: headers, one event, then the socket held open. */
async function startRawServer(): Promise<number> {
  const open = new Set<import('node:http').ServerResponse>()
  const event = Buffer.from(`retry: 1000\n\nid: 0e97bcfe-1795697421742000:26996784_0\ndata: {"headers":{"control":"up-to-date","global_last_seen_lsn":"26996784"}}\n\n`)
  const server = createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', 'x-accel-buffering': 'no' })
    res.write(event)
    open.add(res)
    req.once('close', () => open.delete(res))
  })
  setInterval(() => {
    for (const res of open) res.write(': keep-alive\n\n')
  }, 20_000).unref()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return (server.address() as net.AddressInfo).port
}

async function startSluiceServer(databaseUrl: string): Promise<number> {
  const { mkdtemp } = await import('node:fs/promises')
  const { tmpdir } = await import('node:os')
  const { join } = await import('node:path')
  const { loadConfig } = await import('../src/config.js')
  const { createLogger } = await import('../src/log.js')
  const { startSluice } = await import('../src/server.js')
  const suffix = Math.random().toString(16).slice(2, 10)
  const config = {
    ...loadConfig({}),
    port: 0,
    host: '127.0.0.1',
    dataDir: await mkdtemp(join(tmpdir(), 'sluice-bench-sse-')),
    replicationSlot: `sluice_bench_sse_${suffix}`,
    publication: `sluice_bench_sse_${suffix}`,
    logLevel: 'silent' as const,
    maxLiveConnections: 1_000_000,
    sseTimeoutMs: 3_600_000,
    databaseUrl,
  }
  const server = await startSluice(config, createLogger(config.logLevel))
  return Number(new URL(server.url).port)
}

if (process.argv[2] === CHILD_FLAG) {
  void runChild(process.argv[3]!, process.argv[4])
} else if (process.argv[1] === SELF) {
  const rows = await runSseMemoryBench()
  for (const row of rows) process.stdout.write(`${JSON.stringify(row, null, 2)}\n`)
}
