/**
 * The client side of the latency bench (`bench/sse-latency.ts`): a process that opens many SSE
 * streams as raw `node:http` requests, scans each chunk's bytes for `"seq":"<n>"` (no parsing per
 * event, so that the figure is the server's, not the clients') and records arrival times. It is
 * driven over IPC (`sse-client-protocol.ts`); the latency is computed here, against the commit times
 * the parent sends, with the clock offset the parent measured.
 */
import { request, type IncomingMessage } from 'node:http'
import { BUCKET_MS, BUCKETS, clock, rowOfTransaction, type ClientResult, type FromClients, type RowShapes, type ToClients } from './sse-client-protocol.js'
import { sleep } from './timing.js'

/** The pattern of the seq column in an event's JSON (values are PostgreSQL text). */
const SEQ_BYTES = Buffer.from('"seq":"')
const QUOTE = 0x22
const NEWLINE = 0x0a
const UP_TO_DATE_BYTES = Buffer.from('"control":"up-to-date"')

interface Stream {
  /** Arrival time of each seq, NaN until it arrives. */
  readonly arrivals: Float64Array
  received: number
  /** The row this stream's shape holds (`id = row` of `rowCount`); undefined: the whole table. */
  readonly row: { readonly id: number; readonly count: number } | undefined
  live: boolean
  ended: boolean
  res?: IncomingMessage
}

function runClients(): void {
  const streams: Stream[] = []
  const reply = (m: FromClients) => process.send!(m)

  process.on('message', (m: ToClients) => {
    switch (m.type) {
      case 'open':
        void openAll(m.url, m.clients, m.capacity, m.rows).then((r) => reply({ type: 'opened', ...r }))
        return
      case 'ping':
        reply({ type: 'pong', sent: m.sent, now: clock() })
        return
      case 'cpu': {
        const { user, system } = process.cpuUsage()
        reply({ type: 'cpu', userMs: user / 1000, systemMs: system / 1000 })
        return
      }
      case 'collect':
        void collect(m.commits, m.committed, m.offsetMs, m.waitMs).then((result) => reply({ type: 'result', result }))
        return
    }
  })
  process.on('SIGTERM', () => {
    for (const s of streams) s.res?.destroy()
    process.exit(0)
  })

  async function openAll(url: string, n: number, capacity: number, rows: RowShapes | undefined): Promise<{ live: number; failed: number; firstError: string | undefined }> {
    let failed = 0
    let firstError: string | undefined
    for (let i = 0; i < n; i += 50) {
      const batch = Array.from({ length: Math.min(50, n - i) }, (_, k) => {
        if (!rows) return openOne(url, capacity, undefined)
        const row = { id: rows.first + i + k, count: rows.count }
        return openOne(`${url}&where=${encodeURIComponent(`id = ${row.id}`)}`, capacity, row)
      })
      for (const outcome of await Promise.allSettled(batch)) {
        if (outcome.status === 'fulfilled') streams.push(outcome.value)
        else {
          failed++
          firstError ??= String(outcome.reason)
        }
      }
    }
    return { live: streams.length, failed, firstError }
  }

  function openOne(url: string, capacity: number, row: Stream['row']): Promise<Stream> {
    return new Promise((resolve, reject) => {
      const stream: Stream = { arrivals: new Float64Array(capacity).fill(Number.NaN), received: 0, row, live: false, ended: false }
      const timer = setTimeout(() => reject(new Error('no up-to-date within 60 s')), 60_000)
      const req = request(url, { agent: false, headers: { accept: 'text/event-stream' } }, (res) => {
        if (res.statusCode !== 200) {
          clearTimeout(timer)
          res.resume()
          return reject(new Error(`status ${res.statusCode}`))
        }
        stream.res = res
        let carry: Buffer | undefined
        res.on('data', (chunk: Buffer) => {
          const now = clock()
          // Scanned as bytes: no string per chunk. `carry` holds an event cut by the chunk edge.
          const bytes = carry ? Buffer.concat([carry, chunk]) : chunk
          let from = 0
          let keepFrom = -1
          for (;;) {
            const at = bytes.indexOf(SEQ_BYTES, from)
            if (at < 0) break
            const start = at + SEQ_BYTES.length
            const end = bytes.indexOf(QUOTE, start)
            if (end < 0) {
              keepFrom = at
              break
            }
            let seq = 0
            for (let i = start; i < end; i++) seq = seq * 10 + (bytes[i]! - 48)
            if (seq > 0 && seq < stream.arrivals.length && Number.isNaN(stream.arrivals[seq]!)) {
              stream.arrivals[seq] = now
              stream.received++
            }
            from = end + 1
          }
          if (!stream.live && bytes.includes(UP_TO_DATE_BYTES)) {
            stream.live = true
            clearTimeout(timer)
            resolve(stream)
          }
          // Events end in a blank line and no pattern spans lines: carry only the unfinished line.
          const tail = keepFrom >= 0 ? keepFrom : Math.max(from, bytes.lastIndexOf(NEWLINE) + 1)
          carry = tail < bytes.length ? Buffer.from(bytes.subarray(tail)) : undefined
        })
        res.on('close', () => {
          stream.ended = true
          clearTimeout(timer)
          reject(new Error('stream ended before up-to-date'))
        })
      })
      req.on('error', (error) => {
        clearTimeout(timer)
        reject(error)
      })
      req.end()
    })
  }

  async function collect(commits: Float64Array, committed: number, offsetMs: number, waitMs: number): Promise<ClientResult> {
    const expects = (s: Stream, seq: number) => !Number.isNaN(commits[seq]!) && (!s.row || rowOfTransaction(seq, s.row.count) === s.row.id)
    const expected = streams.map((s) => {
      if (!s.row) return committed
      let n = 0
      for (let seq = 1; seq < commits.length; seq++) if (expects(s, seq)) n++
      return n
    })
    const deadline = Date.now() + waitMs
    while (Date.now() < deadline && streams.some((s, i) => !s.ended && s.received < expected[i]!)) await sleep(20)
    const histogram = new Uint32Array(BUCKETS)
    const overflow: number[] = []
    let samples = 0
    let max = 0
    let negatives = 0
    let complete = 0
    let missing = 0
    for (const [i, s] of streams.entries()) {
      let got = 0
      for (let seq = 1; seq < commits.length; seq++) {
        if (!expects(s, seq)) continue
        const committedAt = commits[seq]!
        const arrived = s.arrivals[seq]!
        if (Number.isNaN(arrived)) {
          missing++
          continue
        }
        got++
        let ms = arrived - offsetMs - committedAt
        if (ms < 0) {
          negatives++
          ms = 0
        }
        samples++
        max = Math.max(max, ms)
        const bucket = Math.floor(ms / BUCKET_MS)
        if (bucket < BUCKETS) histogram[bucket]!++
        else overflow.push(ms)
      }
      if (got === expected[i]) complete++
    }
    return { histogram, overflow, samples, max, negatives, complete, clients: streams.length, ended: streams.filter((s) => s.ended).length, missing }
  }
}

runClients()
