/**
 * fanout: what one commit costs Sluice's SSE path per client, beside the floor's loop, in one
 * process on the same sockets. `latency`'s fan-out rows time commit → event end to end, where
 * PostgreSQL, storage, the clients and the machine's other load all weigh in; this isolates the
 * part that grows with the clients: a round that writes one commit to every connection of a shape.
 *
 * - One `node:http` server here; a reader process (`--reader`) opens 2 × BENCH_FANOUT_CLIENTS
 *   (1,000) event streams to it and discards what arrives.
 * - Half are Sluice's: `SseHub.open` as `sse-route.ts` opens them (Electric's framing, the
 *   connection past its first up-to-date), over a shape log in memory, so a round is exactly
 *   what a wake-up costs in `SseHub`/`SseConnection`: the notifier's wake, one read and one
 *   encoding shared by every connection, and a write to each.
 * - The other half are the floor's (`bench/support/raw-sse-broadcaster.ts`): the same bytes,
 *   encoded once, `socket.write` to each.
 * - Rounds alternate, Sluice's then the floor's, one commit (a one-row UPDATE's event and an
 *   up-to-date, as the latency bench's) each; CPU is this process's (`process.cpuUsage`) from the
 *   commit until every connection has been written to, with the callbacks Node runs after the
 *   writes. The reader's CPU is its own process's.
 *
 * Run alone: `node --import tsx bench/fanout.ts`.
 */
import { fork, type ChildProcess } from 'node:child_process'
import { createServer, request, type IncomingMessage, type ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import { loadavg } from 'node:os'
import { fileURLToPath } from 'node:url'
import { SseHub } from '../src/http/sse-hub.js'
import { SSE_FRAMING, encodeEvents } from '../src/http/sse-events.js'
import { upToDateMessage } from '../src/http/log-reader.js'
import type { ShapeLogReader, ShapeLogWaiter } from '../src/http/shape-log.js'
import { lsn, type Lsn } from '../src/pg/lsn.js'
import { compareOffsets, type Offset } from '../src/protocol/offset.js'
import type { ActiveShape } from '../src/shapes/active-shape.js'
import type { SseConnection } from '../src/http/sse-connection.js'
import { formatCount, progress, sleep, waitUntil } from './support/timing.js'
import { round2, type BenchRow } from './support/report.js'
import { envInt } from './support/env.js'

const SELF = fileURLToPath(import.meta.url)
const READER_FLAG = '--reader'
const SHAPE_ID = 1
/** The event of one `UPDATE latency_items SET seq = <n>` as Sluice stores it. */
const entryOf = (tx: bigint) =>
  Buffer.from(
    `{"key":"\\"public\\".\\"latency_items\\"/\\"3\\"","value":{"id":"3","seq":"${tx}"},"headers":{"operation":"update","relation":["public","latency_items"],"lsn":"${tx}","op_position":0,"txids":[${tx % 100_000n}],"last":true}}`,
  )

interface Side {
  /** CPU of each counted round, µs. */
  readonly rounds: number[]
}

export async function runFanoutBench(): Promise<BenchRow[]> {
  const clients = envInt('BENCH_FANOUT_CLIENTS', 1_000)
  const rounds = envInt('BENCH_FANOUT_ROUNDS', 400)
  const log = new OneShapeLog()
  const hub = new SseHub({ store: log, notifier: log, sse: { timeoutMs: 3_600_000, keepAliveMs: 3_600_000, retryMs: 1_000 } })
  const shape = { stored: { id: SHAPE_ID, handle: '1-1' }, dropped: false, snapshotComplete: true, heldFrom: undefined } as unknown as ActiveShape
  const hubConnections: SseConnection[] = []
  const raw: Socket[] = []
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    req.resume()
    res.removeHeader('transfer-encoding')
    res.writeHead(200, { 'content-type': 'text/event-stream', connection: 'close' })
    res.flushHeaders()
    if (req.url?.startsWith('/hub')) hubConnections.push(hub.open(shape, log.headOrStart(), SSE_FRAMING.electric, res))
    else raw.push(res.socket!)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as { port: number }
  const reader = fork(SELF, [READER_FLAG, String(port), String(clients)], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  try {
    progress(`${formatCount(clients)} of Sluice's SSE connections and ${formatCount(clients)} of the floor's, one reader process`)
    await waitUntil('every stream to open', () => hubConnections.length === clients && raw.length === clients, 120_000, 20)
    const sluice: Side = { rounds: [] }
    const floor: Side = { rounds: [] }
    const readerBefore = await readerCpu(reader)
    let lastSluiceMs = 0
    // A few rounds each to warm up (JIT), not counted.
    for (let round = 0; round < rounds + 20; round++) {
      const counted = round >= 20
      const tx = log.commit()
      // Each round starts with the reader idle (a write that wakes a sleeping reader costs more
      // than one to a reader already running), and which side goes first alternates.
      const sides = round % 2 === 0 ? [sluice, floor] : [floor, sluice]
      for (const side of sides) {
        // Longer than the hub's pacing (the next round waits as long as the last one took).
        await sleep(5 + lastSluiceMs)
        const us = side === sluice ? await sluiceRound(log, hubConnections, tx) : await floorRound(raw, log.lastBatchBytes())
        if (counted) side.rounds.push(us)
      }
    }
    const readerUs = (await readerCpu(reader)) - readerBefore
    // The median round: on a shared machine a round can lose the CPU, or take a collection's work.
    const perClient = (side: Side) => median(side.rounds) / clients
    const meanPerClient = (side: Side) => side.rounds.reduce((a, b) => a + b, 0) / side.rounds.length / clients
    progress(`per client per commit (median round): Sluice ${perClient(sluice).toFixed(2)} µs, floor ${perClient(floor).toFixed(2)} µs`)
    return [
      {
        scenario: 'fanout',
        measure: `CPU per client per commit in a fan-out round (${formatCount(clients)} SSE connections on one shape, one commit a round)`,
        value: round2(perClient(sluice)),
        unit: 'µs',
        baseline: { label: "the floor's loop: the same bytes encoded once, socket.write to each", value: round2(perClient(floor)), unit: 'µs' },
        goal: { on: 'ratio', op: '<=', target: 1.1 },
        note:
          `median of ${formatCount(rounds)} rounds each (mean ${meanPerClient(sluice).toFixed(2)} vs ${meanPerClient(floor).toFixed(2)} µs), ` +
          `alternating which goes first, in one process, the reader idle at each round's start; ` +
          `the reader process: ${(readerUs / (2 * rounds) / clients).toFixed(2)} µs per client per commit (both sides); load average ${loadavg()[0]!.toFixed(1)}`,
      },
    ]
  } finally {
    reader.kill('SIGTERM')
    hub.close()
    server.closeAllConnections()
    server.close()
  }
}

/** Sluice's round: from the commit's wake-up until every connection has taken it. */
async function sluiceRound(log: OneShapeLog, connections: readonly SseConnection[], tx: bigint): Promise<number> {
  const before = process.cpuUsage()
  log.notify()
  // Polled on a timer, not spun: a connection whose socket was full finishes on its `drain`.
  while (!connections.every((c) => c.offset.tx === tx)) await sleep(1)
  await nextTurn()
  return usedSince(before)
}

/** The floor's round: the batch's bytes to every socket. */
async function floorRound(sockets: readonly Socket[], bytes: Buffer): Promise<number> {
  const before = process.cpuUsage()
  const copy = Buffer.from(bytes)
  for (const socket of sockets) socket.write(copy)
  await nextTurn()
  return usedSince(before)
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.floor(sorted.length / 2)]!
}

function usedSince(before: NodeJS.CpuUsage): number {
  const { user, system } = process.cpuUsage(before)
  return user + system
}

const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve))

/** One shape's log in memory: one entry per commit, readable at once, as storage shows it. */
class OneShapeLog implements ShapeLogReader, ShapeLogWaiter {
  committedLsn: Lsn = lsn(1_000n)
  #head: Offset = { tx: 1_000n, op: 0 }
  #entry = entryOf(1_000n)
  #waiters: (() => void)[] = []

  headOrStart(): Offset {
    return this.#head
  }

  commit(): bigint {
    const tx = this.#head.tx + 1n
    this.#head = { tx, op: 0 }
    this.#entry = entryOf(tx)
    this.committedLsn = lsn(tx)
    return tx
  }

  /** What the floor writes for the last commit: what Sluice's round writes, encoded once. */
  lastBatchBytes(): Buffer {
    return encodeEvents([this.#entry, upToDateMessage(this.#head.tx)], undefined)
  }

  notify(): void {
    const waiters = this.#waiters
    this.#waiters = []
    for (const wake of waiters) wake()
  }

  head(): Offset {
    return this.#head
  }

  chunkEndAfter(): undefined {
    return undefined
  }

  read(_shapeId: number, after: Offset, upTo: Offset): Buffer[] {
    return compareOffsets(after, this.#head) < 0 && compareOffsets(upTo, this.#head) >= 0 ? [this.#entry] : []
  }

  readJoinable(shapeId: number, after: Offset, upTo: Offset): Buffer[] {
    return this.read(shapeId, after, upTo)
  }

  wait(_shapeId: number, timeoutMs: number, signal?: AbortSignal): Promise<boolean> {
    return new Promise((resolve) => {
      const onAbort = () => resolve(false)
      const timer = setTimeout(onAbort, timeoutMs)
      const wake = () => {
        clearTimeout(timer)
        signal?.removeEventListener('abort', onAbort)
        resolve(true)
      }
      this.#waiters.push(wake)
      signal?.addEventListener('abort', onAbort, { once: true })
    })
  }
}

function readerCpu(reader: ChildProcess): Promise<number> {
  return new Promise((resolve) => {
    reader.once('message', (m: { cpuUs: number }) => resolve(m.cpuUs))
    reader.send('cpu')
  })
}

/** The reader process: opens the streams and discards what comes. */
async function runReader(port: number, clients: number): Promise<void> {
  const open = (path: string) =>
    new Promise<void>((resolve, reject) => {
      request({ host: '127.0.0.1', port, path, agent: false }, (res) => {
        res.on('data', () => undefined)
        resolve()
      }).on('error', reject).end()
    })
  for (let i = 0; i < clients; i += 50) {
    const batch: Promise<void>[] = []
    for (let k = i; k < Math.min(clients, i + 50); k++) batch.push(open('/hub'), open('/raw'))
    await Promise.all(batch)
  }
  process.on('message', () => {
    const { user, system } = process.cpuUsage()
    process.send!({ cpuUs: user + system })
  })
  process.on('SIGTERM', () => process.exit(0))
}

if (process.argv[2] === READER_FLAG) await runReader(Number(process.argv[3]), Number(process.argv[4]))
else if (process.argv[1] === SELF) {
  for (const row of await runFanoutBench()) process.stdout.write(`${JSON.stringify(row, null, 2)}\n`)
}
