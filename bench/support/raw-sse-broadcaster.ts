/**
 * The latency floor (bench/sse-latency.ts): the least a server can do to turn a commit into a
 * Server-Sent Event at 1,000 clients, run as its own process like Sluice
 * (`node --import tsx bench/support/raw-sse-broadcaster.ts`).
 *
 * - Changes come from `pg-logical-replication` with pgoutput, on a slot and publication of its
 *   own that the parent made beforehand (`createBaselineSlot` in baseline-decoder.ts).
 * - Any GET on 127.0.0.1 is a plain `node:http` event stream: headers and one up-to-date event
 *   at once (the bench's clients count a stream live on it), then every row change committed
 *   after, as the same bytes Sluice sends for it: one event per change in the wire format
 *   (key, the primary key and changed `seq` as values, headers with operation, relation, LSN,
 *   position, txid and `last`), and per flush an up-to-date event with an `id:` line. The bench
 *   updates `seq` only, so that is what changed; `id` is the primary key.
 * - Like Sluice, it coalesces: transactions decoded in one event-loop turn go out in one buffer,
 *   flushed on `setImmediate`, the same bytes written to every socket — never one write per
 *   transaction per client, and nothing encoded per connection. The body is close-delimited
 *   and written to the socket directly, as Sluice's `SseConnection` does.
 * - It has no storage, no shapes and no backpressure (a slow socket just buffers), so its
 *   latency is what PostgreSQL, decoding, the loopback and the clients cost on their own.
 * - After each flush it acknowledges the last commit sent, so the slot keeps no WAL.
 *
 * Environment: DATABASE_URL, PORT, FLOOR_SLOT (slot and publication name). Prints `ready` on
 * stdout once it serves and the slot streams; ends on SIGTERM.
 */
import { createServer, type ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import { LogicalReplicationService, PgoutputPlugin, type Pgoutput } from 'pg-logical-replication'

const url = required('DATABASE_URL')
const port = Number(required('PORT'))
const slot = required('FLOOR_SLOT')

/** The first event: what the bench's clients wait for before a stream counts as live. */
const UP_TO_DATE = Buffer.from('data: {"headers":{"control":"up-to-date"}}\n\n')

const sockets = new Set<Socket>()
/** Events of the transaction being decoded; sent only once it commits. */
let open: string[] = []
/** The open transaction's LSN (as Sluice's `lsn` header: decimal) and xid. */
let openLsn = '0'
let openXid = 0
/** Events of the transactions committed since the last flush, as one string. */
let pending = ''
let flushScheduled = false
/** End LSN of the last commit queued, and of the last one acknowledged. */
let lastCommitEnd: string | undefined
/** The up-to-date event that ends a flush, for the last commit queued. */
let upToDate = ''
/** As long as a Sluice handle, for an `id:` line of the same length. */
const HANDLE = '0123456789-1795711563132000'
let acknowledged: string | undefined

const server = createServer((req, res) => {
  // Whatever the path: the clients ask for Sluice's URL, and this serves one stream.
  req.resume()
  openStream(res)
})

function openStream(res: ServerResponse): void {
  const socket = res.socket
  if (!socket) return
  // Close-delimited, no chunked framing: the body bytes then go to the socket as they are.
  res.removeHeader('transfer-encoding')
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'close' })
  res.write(UP_TO_DATE)
  sockets.add(socket)
  res.on('close', () => sockets.delete(socket))
}

const service = new LogicalReplicationService(
  { connectionString: url },
  // Acknowledged by hand once per flush: the library's automatic one sends a status update per message.
  { acknowledge: { auto: false, timeoutSeconds: 0 }, flowControl: { enabled: false } },
)

service.on('data', (_lsn: string, message: Pgoutput.Message) => {
  switch (message.tag) {
    case 'begin':
      openLsn = String(lsnValue(message.commitLsn ?? '0/0'))
      openXid = message.xid
      return
    case 'insert':
    case 'update': {
      const { schema, name } = message.relation
      const id = String(message.new['id'])
      const value = JSON.stringify({ id, seq: String(message.new['seq']) })
      const key = JSON.stringify(`"${schema}"."${name}"/"${id}"`)
      const headers = `{"operation":"${message.tag}","relation":${JSON.stringify([schema, name])},"lsn":"${openLsn}","op_position":${open.length},"txids":[${openXid}],"last":true}`
      open.push(`data: {"key":${key},"value":${value},"headers":${headers}}\n\n`)
      return
    }
    case 'commit':
      pending += open.join('')
      open = []
      if (message.commitEndLsn) {
        lastCommitEnd = message.commitEndLsn
        upToDate = `id: ${HANDLE}:${openLsn}_0\ndata: {"headers":{"control":"up-to-date","global_last_seen_lsn":"${openLsn}"}}\n\n`
      }
      scheduleFlush()
      return
    default:
      return
  }
})

// PostgreSQL asks for a reply now and then (wal_sender_timeout); with nothing in flight, its own
// position is as good as ours.
service.on('heartbeat', (lsn: string, _timestamp: number, shouldRespond: boolean) => {
  if (!shouldRespond) return
  const idle = open.length === 0 && pending === ''
  void service.acknowledge(idle ? lsn : (acknowledged ?? '0/0'))
})

service.on('error', (error: Error) => fail(error))

function scheduleFlush(): void {
  if (flushScheduled) return
  flushScheduled = true
  setImmediate(flush)
}

/** One buffer for everything committed this turn, written to every open socket. */
function flush(): void {
  flushScheduled = false
  if (pending !== '') {
    const bytes = Buffer.from(pending + upToDate, 'latin1')
    pending = ''
    for (const socket of sockets) socket.write(bytes)
  }
  if (lastCommitEnd !== undefined && lastCommitEnd !== acknowledged) {
    acknowledged = lastCommitEnd
    void service.acknowledge(lastCommitEnd)
  }
}

function fail(error: unknown): never {
  process.stderr.write(`raw SSE broadcaster: ${(error as Error)?.stack ?? String(error)}\n`)
  process.exit(1)
}

/** `X/Y` → the 64-bit LSN. */
function lsnValue(text: string): bigint {
  const [high, low] = text.split('/')
  return (BigInt(`0x${high}`) << 32n) + BigInt(`0x${low}`)
}

function required(name: string): string {
  const value = process.env[name]
  if (!value) fail(new Error(`${name} is not set`))
  return value
}

let stopping = false
process.on('SIGTERM', () => {
  stopping = true
  for (const socket of sockets) socket.destroy()
  server.close()
  // Ending the replication connection releases the slot, so the parent can drop it.
  void service.stop().finally(() => process.exit(0))
})

await new Promise<void>((resolve, reject) => {
  server.once('error', reject)
  server.listen(port, '127.0.0.1', resolve)
})
await new Promise<void>((resolve) => {
  service.once('start', resolve)
  // The promise settles only when streaming ends: before SIGTERM, that is a failure.
  service.subscribe(new PgoutputPlugin({ protoVersion: 1, publicationNames: [slot] }), slot).then(
    () => stopping || fail(new Error('replication ended')),
    (error: unknown) => stopping || fail(error),
  )
})
process.stdout.write('ready\n')
