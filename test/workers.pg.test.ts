/**
 * `SLUICE_WORKERS=2` (docs/ARCHITECTURE.md I27): two HTTP worker processes serve reads from the
 * owner's storage. Each test tells the workers apart by `x-sluice-worker` (the answering pid);
 * the kernel hands each new connection to one of them.
 * - every worker answers every chunk of a shape with the same status, headers and bytes;
 * - a change reaches long-poll and SSE clients (`@electric-sql/client`) on every worker;
 * - a shape deleted through one worker is a 409 on both, for new requests and parked long-polls;
 * - a worker killed with SIGKILL under load (writers running, long-polls and SSE streams on it):
 *   its clients reconnect to the other and end equal to PostgreSQL, the other worker answers
 *   throughout, and the owner starts a new worker;
 * - a scrape of /metrics answered by either worker sums both workers' responses and live
 *   connections; a killed worker's responses stay counted (docs/ARCHITECTURE.md I34);
 * - SIGTERM to the owner: waiting long-polls answer up-to-date, every process exits, code 0;
 * - after each test, no live request is left open on any worker;
 * - a worker killed while Sluice starts is replaced, and Sluice starts.
 */
import { ShapeStream, type Row } from '@electric-sql/client'
import { Agent, request } from 'node:http'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Client as HttpClient } from 'undici'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { ChildSluice } from './support/child-sluice.js'
import { createTestDatabase, type TestDatabase } from './support/database.js'
import { shapeOf } from './support/electric.js'
import { waitFor } from './support/wait.js'
import { startTwoWorkers, stopTwoWorkers } from './support/workers-sluice.js'

let db: TestDatabase
let sluice: ChildSluice

beforeAll(async () => {
  db = await createTestDatabase()
  await db.pool.query(`CREATE TABLE items (id int PRIMARY KEY, title text NOT NULL)`)
  await db.pool.query(`INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 300) g`)
  sluice = await startTwoWorkers(db, 'workers', { SLUICE_CHUNK_BYTES: '4096', SLUICE_ALLOW_SHAPE_DELETION: 'true' })
  // Healthy once one worker listens; the other may still be starting.
  await waitFor(() => fromEachWorker(`${sluice.baseUrl}/v1/health`), 60_000)
}, 120_000)

afterAll(() => stopTwoWorkers(sluice, db))

interface Answer {
  readonly status: number
  readonly headers: Record<string, string | string[] | undefined>
  readonly body: string
}

/** One request on a connection of its own (or `agent`'s); `timeoutMs`: of silence on the socket. */
function getFresh(url: string, method = 'GET', timeoutMs?: number, agent: Agent | false = false): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent, method, ...(timeoutMs ? { timeout: timeoutMs } : {}) }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => (body += chunk))
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }))
      res.on('error', reject)
    })
    req.on('error', reject)
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)))
    req.end()
  })
}

const workerOf = (answer: { readonly headers: Record<string, unknown> }) => String(answer.headers['x-sluice-worker'])

/** The answer of each worker to `url`, by pid (new connections until both have answered: on a busy machine one worker can take a long run of them). */
async function fromEachWorker(url: string): Promise<Map<string, Answer>> {
  const answers = new Map<string, Answer>()
  for (let i = 0; i < 100 && answers.size < 2; i++) {
    const answer = await getFresh(url)
    answers.set(workerOf(answer), answer)
  }
  expect(answers.size, 'requests on new connections reached both workers').toBe(2)
  return answers
}

/** What must not differ between workers: everything but the date and who answered. */
function comparable(answer: Answer) {
  const { date: _date, 'x-sluice-worker': _worker, 'x-request-id': _id, ...headers } = answer.headers
  return { status: answer.status, headers, body: answer.body }
}

/** A series' value in a scrape (0 if it has none yet); `series` is a regular expression. */
function valueOf(scrape: string, series: string): number {
  return Number(new RegExp(`^${series} (\\d+)$`, 'm').exec(scrape)?.[1] ?? 0)
}

/** Live requests open on all workers, from one scrape (docs/ARCHITECTURE.md I34: it sums them). */
async function liveRequests(): Promise<number> {
  return valueOf((await getFresh(`${sluice.baseUrl}/metrics`)).body, 'sluice_live_connections')
}

async function tableRows(): Promise<Row[]> {
  const { rows } = await db.pool.query<Row>(`SELECT id, title FROM items ORDER BY id`)
  return rows
}

const byId = (rows: readonly Row<unknown>[]) => [...rows].sort((a, b) => Number(a['id']) - Number(b['id']))

interface Client {
  readonly liveSse: boolean
  readonly shape: ReturnType<typeof shapeOf>
  readonly errors: readonly string[]
  /** The workers that answered it. */
  readonly workers: Set<string>
  close(): Promise<void>
}

/** A client with connections of its own, recording which worker answered each live request. */
function follow(liveSse: boolean): Client {
  // One connection, so each client stays on the worker its connection was handed to. A Client,
  // not an Agent: an Agent drops a Client whose connection broke (the killed worker's) from its
  // pool and lets it serve the requests already queued on it on a new connection, which the
  // Agent's destroy() then never reaches (an SSE stream left open until the server's timeout).
  const dispatcher = new HttpClient(sluice.baseUrl)
  const workers = new Set<string>()
  const fetchClient: typeof fetch = async (input, init) => {
    // Node's fetch takes undici's `dispatcher`, which its RequestInit type does not list.
    const response = await fetch(input, { ...init, dispatcher } as unknown as RequestInit)
    workers.add(String(response.headers.get('x-sluice-worker')))
    return response
  }
  const errors: string[] = []
  const stream = new ShapeStream({
    url: sluice.shapeUrl,
    params: { table: 'items' },
    liveSse,
    fetchClient,
    // The client stops on an error it does not retry by itself: say which.
    onError: (error) => {
      errors.push(String(error))
    },
  })
  return {
    liveSse,
    errors,
    shape: shapeOf(stream),
    workers,
    async close() {
      stream.unsubscribeAll()
      // Not `close()`, which waits for a long-poll in flight to end.
      await dispatcher.destroy()
    },
  }
}

/**
 * Synced clients of one kind, started one at a time until they are on both workers (each
 * client's one connection goes to the worker the kernel hands it to).
 */
async function clientsOnBothWorkers(liveSse: boolean, atLeast: number): Promise<Client[]> {
  const clients: Client[] = []
  const workers = new Set<string>()
  while (clients.length < atLeast || (workers.size < 2 && clients.length < 24)) {
    const client = follow(liveSse)
    clients.push(client)
    await client.shape.rows
    for (const worker of client.workers) workers.add(worker)
  }
  expect(workers.size, 'clients on both workers').toBe(2)
  return clients
}

/** Waits until every client holds the table's rows; names the ones that do not. */
async function allCaughtUp(clients: readonly Client[], timeoutMs: number): Promise<void> {
  const expected = byId(await tableRows())
  await waitFor(() => {
    const behind = clients.filter((client) => JSON.stringify(byId(client.shape.currentRows)) !== JSON.stringify(expected))
    expect(behind.map((c) => `${c.liveSse ? 'sse' : 'long-poll'} on ${[...c.workers].join('+')}: ${c.shape.currentRows.length} of ${expected.length} rows${c.errors.length > 0 ? `, errors: ${c.errors.join('; ')}` : ''}`)).toEqual([])
  }, timeoutMs)
}

async function closeAll(clients: readonly Client[]): Promise<void> {
  await Promise.all(clients.map((client) => client.close()))
}

describe('SLUICE_WORKERS=2', () => {
  // A worker frees a live request's slot as its socket closes, so once a test's clients are
  // closed none is left: one that stays is a leak, in a worker or in the test's clients (an SSE
  // stream would otherwise hold its slot for SLUICE_SSE_TIMEOUT_MS, 60 s; a long-poll 20 s).
  afterEach(async () => {
    if (sluice.pid === undefined) return
    await waitFor(async () => expect(await liveRequests(), 'live requests left open by the test').toBe(0), 10_000)
  })

  it('answers every chunk of a shape the same from every worker', async () => {
    let url = `${sluice.shapeUrl}?table=items&offset=-1`
    let chunks = 0
    for (;;) {
      const answers = [...(await fromEachWorker(url)).values()]
      expect(answers[0]!.status).toBe(200)
      expect(comparable(answers[1]!)).toEqual(comparable(answers[0]!))
      chunks++
      if (answers[0]!.headers['electric-up-to-date'] !== undefined) break
      url = `${sluice.shapeUrl}?table=items&offset=${answers[0]!.headers['electric-offset']}&handle=${answers[0]!.headers['electric-handle']}`
    }
    expect(chunks).toBeGreaterThan(3)

    // The log past the snapshot, once both workers have it.
    await db.pool.query(`INSERT INTO items VALUES (1001, 'late')`)
    const tail = url
    await waitFor(async () => {
      const answers = [...(await fromEachWorker(tail)).values()]
      for (const answer of answers) expect(answer.body).toContain('"late"')
      expect(comparable(answers[1]!)).toEqual(comparable(answers[0]!))
    })
  })

  it('serves the owner’s metrics with the workers’ from every worker', async () => {
    const answers = [...(await fromEachWorker(`${sluice.baseUrl}/metrics`)).values()]
    for (const { body } of answers) {
      // Counted by the owner only: replication's transactions (the earlier test's insert) and its shapes.
      expect(valueOf(body, 'sluice_transactions_total'), body).toBeGreaterThan(0)
      expect(valueOf(body, 'sluice_shapes')).toBe(1)
      // Every metric once, the owner's and the workers' summed.
      const types = body.split('\n').filter((line) => line.startsWith('# TYPE '))
      expect(new Set(types).size).toBe(types.length)
      // Counted by the workers: the responses they sent.
      expect(valueOf(body, 'sluice_http_responses_total\\{status="200"\\}')).toBeGreaterThan(0)
      expect(valueOf(body, 'sluice_workers_missing_from_scrape')).toBe(0)
    }
  })

  /** An SSE stream on a connection of its own, open once its headers arrive. */
  function openSse(url: string): Promise<{ readonly worker: string; close(): void }> {
    return new Promise((resolve, reject) => {
      const req = request(url, { agent: false }, (res) => {
        res.resume()
        if (res.statusCode === 200) resolve({ worker: workerOf(res), close: () => req.destroy() })
        else reject(new Error(`SSE request answered ${res.statusCode}`))
      })
      req.on('error', reject)
      req.end()
    })
  }

  it('sums every worker’s responses and live connections in each scrape, whichever worker answers, and keeps a killed worker’s', { timeout: 120_000 }, async () => {
    const badRequests = (scrape: string) => valueOf(scrape, 'sluice_http_responses_total\\{status="400"\\}')
    const before = badRequests((await getFresh(`${sluice.baseUrl}/metrics`)).body)
    // 400s (a shape request without an offset) on new connections until both workers have sent some.
    const sentBy = new Map<string, number>()
    for (let i = 0; i < 100 && !(sentBy.size === 2 && [...sentBy.values()].every((n) => n >= 2)); i++) {
      const answer = await getFresh(`${sluice.shapeUrl}?table=items`)
      expect(answer.status, answer.body).toBe(400)
      sentBy.set(workerOf(answer), (sentBy.get(workerOf(answer)) ?? 0) + 1)
    }
    expect(sentBy.size, '400s sent by both workers').toBe(2)
    const sent = [...sentBy.values()].reduce((a, b) => a + b, 0)

    // SSE streams on new connections until both workers hold some.
    const head = await getFresh(`${sluice.shapeUrl}?table=items&offset=now`)
    const sse = `${sluice.shapeUrl}?table=items&offset=${head.headers['electric-offset']}&handle=${head.headers['electric-handle']}&live=true&live_sse=true`
    const streams: { readonly worker: string; close(): void }[] = []
    try {
      while (new Set(streams.map((stream) => stream.worker)).size < 2 && streams.length < 24) streams.push(await openSse(sse))
      expect(new Set(streams.map((stream) => stream.worker)).size, 'SSE streams on both workers').toBe(2)

      // Each worker answers a scrape with all of it: the 400s both sent, the streams both hold.
      await waitFor(async () => {
        for (const { body } of (await fromEachWorker(`${sluice.baseUrl}/metrics`)).values()) {
          expect(valueOf(body, 'sluice_live_connections'), body).toBe(streams.length)
          expect(badRequests(body)).toBe(before + sent)
        }
      }, 30_000)

      // A worker killed: its streams leave the gauge, its 400s stay in the counter.
      const victim = streams[0]!.worker
      process.kill(Number(victim), 'SIGKILL')
      for (const stream of streams) stream.close()
      await waitFor(async () => {
        const answers = await fromEachWorker(`${sluice.baseUrl}/metrics`)
        expect([...answers.keys()]).not.toContain(victim)
        for (const { body } of answers.values()) {
          expect(valueOf(body, 'sluice_live_connections'), body).toBe(0)
          expect(badRequests(body)).toBe(before + sent)
        }
      }, 60_000)
    } finally {
      for (const stream of streams) stream.close()
    }
  })

  it('brings a change to long-poll and SSE clients on every worker', async () => {
    const clients: Client[] = []
    try {
      clients.push(...(await clientsOnBothWorkers(false, 2)), ...(await clientsOnBothWorkers(true, 2)))
      await db.pool.query(`INSERT INTO items VALUES (2001, 'live')`)
      await allCaughtUp(clients, 15_000)
    } finally {
      await closeAll(clients)
    }
  }, 120_000)

  /**
   * A long-poll parked at `at` on a connection of its own, whose worker a first request (not live)
   * on that connection names. A long-poll that ends at the long-poll timeout (200: nothing new, up
   * to date) is parked again on the same connection, so the same worker: on a busy machine parking
   * polls on both workers can take longer than that timeout.
   */
  async function parkedPoll(at: string): Promise<{ readonly worker: string; readonly answer: Promise<Answer> }> {
    const connection = new Agent({ keepAlive: true, maxSockets: 1 })
    const worker = workerOf(await getFresh(at, 'GET', undefined, connection))
    const answer = (async () => {
      try {
        for (;;) {
          const answer = await getFresh(`${at}&live=true`, 'GET', undefined, connection)
          const messages = answer.status === 200 ? (JSON.parse(answer.body) as { headers?: { control?: string } }[]) : []
          if (messages.length !== 1 || messages[0]?.headers?.control !== 'up-to-date') return answer
        }
      } finally {
        connection.destroy()
      }
    })()
    return { worker, answer }
  }

  it('answers 409 on every worker once a shape is deleted, to new requests and parked long-polls', { timeout: 120_000 }, async () => {
    const shapeUrl = `${sluice.shapeUrl}?table=items&where=${encodeURIComponent('id <= 20')}`
    let head = await getFresh(`${shapeUrl}&offset=-1`)
    while (head.headers['electric-up-to-date'] === undefined) {
      head = await getFresh(`${shapeUrl}&offset=${head.headers['electric-offset']}&handle=${head.headers['electric-handle']}`)
    }
    const handle = String(head.headers['electric-handle'])
    const at = `${shapeUrl}&offset=${head.headers['electric-offset']}&handle=${handle}`
    // Long-polls waiting at the head, on both workers: the kernel picks the worker of a new
    // connection, so polls are parked one by one until each worker holds some.
    expect(await liveRequests()).toBe(0)
    const parked: { readonly worker: string; readonly answer: Promise<Answer> }[] = []
    while (new Set(parked.map((poll) => poll.worker)).size < 2 && parked.length < 24) parked.push(await parkedPoll(at))
    await waitFor(async () => expect(await liveRequests()).toBe(parked.length), 60_000)
    expect((await getFresh(`${shapeUrl}&handle=${handle}`, 'DELETE')).status).toBe(202)

    const polls = await Promise.all(parked.map((poll) => poll.answer))
    for (const answer of polls) {
      expect(answer.status, answer.body).toBe(409)
      expect(answer.headers['electric-handle']).not.toBe(handle)
    }
    expect(new Set(polls.map(workerOf)).size, 'parked long-polls on both workers').toBe(2)
    const answers = [...(await fromEachWorker(at)).values()]
    for (const answer of answers) {
      expect(answer.status, answer.body).toBe(409)
      expect(answer.headers['electric-handle']).not.toBe(handle)
    }
    expect(answers[1]!.headers['electric-handle']).toBe(answers[0]!.headers['electric-handle'])
  })

  it('loses nothing when a worker is killed under load, and starts another', async () => {
    const clients: Client[] = []
    let writing = true
    let probing = false
    let prober = Promise.resolve()
    let next = 10_000
    const writer = (async () => {
      while (writing) {
        await db.pool.query(`INSERT INTO items SELECT g, 'load ' || g FROM generate_series($1::int, $1::int + 4) g`, [next])
        next += 5
      }
    })()
    try {
      clients.push(...(await clientsOnBothWorkers(false, 3)), ...(await clientsOnBothWorkers(true, 3)))
      const victim = Number([...clients[0]!.workers][0])
      const onVictim = clients.filter((client) => client.workers.has(String(victim)))
      expect(new Set(onVictim.map((client) => client.liveSse)), 'long-poll and SSE clients on the victim').toEqual(new Set([false, true]))
      // Requests on new connections all along: the other worker answers them throughout.
      const probes: { readonly atMs: number; readonly status: number; readonly worker: string }[] = []
      const failures: string[] = []
      probing = true
      prober = (async () => {
        while (probing) {
          const answer = await getFresh(`${sluice.shapeUrl}?table=items&offset=-1`, 'GET', 5_000).catch((error: Error) => error)
          if (answer instanceof Error) failures.push(answer.message)
          else probes.push({ atMs: Date.now(), status: answer.status, worker: workerOf(answer) })
          await new Promise((resolve) => setTimeout(resolve, 50))
        }
      })()
      const killedAt = Date.now()
      process.kill(victim, 'SIGKILL')
      // Writes go on while the clients of the killed worker reconnect to the other.
      const writtenAtKill = next
      await waitFor(() => expect(next).toBeGreaterThan(writtenAtKill + 200), 30_000)
      writing = false
      await writer
      await allCaughtUp(clients, 60_000)
      // Probing goes on until the other worker has answered a few after the kill: on an idle
      // machine the writes and catch-up above can be over within five probes (CI failed so).
      const servedAfterKill = () => probes.filter((probe) => probe.atMs > killedAt && probe.worker !== String(victim)).map((probe) => probe.atMs)
      await waitFor(() => expect(servedAfterKill().length, 'the other worker answered after the kill').toBeGreaterThan(5), 30_000)
      probing = false
      await prober
      console.info(`probes: ${probes.length} answered, failed: ${failures.join('; ') || 'none'}`)
      expect(probes.filter((probe) => probe.status !== 200), 'every probe answered 200').toEqual([])
      const served = servedAfterKill()
      const gaps = served.slice(1).map((at, i) => at - served[i]!)
      expect(Math.max(served[0]! - killedAt, ...gaps), 'longest time without an answer (ms)').toBeLessThan(5_000)
      // The owner replaced the killed worker: a new pid answers on new connections.
      await waitFor(async () => {
        const pids = [...(await fromEachWorker(`${sluice.baseUrl}/v1/health`)).keys()]
        expect(pids).not.toContain(String(victim))
      }, 30_000)
    } finally {
      writing = false
      probing = false
      await writer
      await prober
      await closeAll(clients)
    }
  }, 300_000)

  it('stops on SIGTERM: waiting long-polls on every worker answer, and the owner exits 0', async () => {
    // The worker started in place of the killed one may still be starting.
    await waitFor(() => fromEachWorker(`${sluice.baseUrl}/v1/health`), 60_000)
    const head = await getFresh(`${sluice.shapeUrl}?table=items&offset=now`)
    const live = `${sluice.shapeUrl}?table=items&offset=${head.headers['electric-offset']}&handle=${head.headers['electric-handle']}&live=true`
    expect(await liveRequests()).toBe(0)
    const waiting = Array.from({ length: 4 }, () => getFresh(live))
    await waitFor(async () => expect(await liveRequests()).toBe(4), 60_000)
    let exitCode: number | null | undefined
    sluice.onExit = (code) => (exitCode = code)
    const signalled = Date.now()
    await sluice.terminate()
    expect(exitCode).toBe(0)
    expect(Date.now() - signalled).toBeLessThan(10_000)
    for (const answer of await Promise.all(waiting)) {
      expect(answer.status).toBe(200)
      expect(JSON.parse(answer.body)).toEqual([{ headers: { control: 'up-to-date', global_last_seen_lsn: expect.any(String) } }])
    }
  }, 180_000)
})

describe('SLUICE_WORKERS=2, a worker killed as Sluice starts', () => {
  it('starts another in its place and serves, the owner staying up', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sluice-workers-start-'))
    const name = `workers_start_${process.pid}`
    const starting = new ChildSluice({ DATABASE_URL: db.url, SLUICE_DATA_DIR: dir, SLUICE_REPLICATION_SLOT: name, SLUICE_PUBLICATION: name, SLUICE_WORKERS: '2' })
    let killed: number | undefined
    try {
      // The first worker, killed as soon as it is forked: long before it (or the other) listens.
      const killer = (async () => {
        const deadline = Date.now() + 60_000
        while (killed === undefined && Date.now() < deadline) {
          const [first] = starting.childPids()
          if (first === undefined) await new Promise((resolve) => setTimeout(resolve, 5))
          else process.kill((killed = first), 'SIGKILL')
        }
      })()
      await starting.start(60_000)
      await killer
      expect(killed, 'a worker was killed while starting').toBeDefined()
      await waitFor(async () => {
        const pids = [...(await fromEachWorker(`${starting.baseUrl}/v1/health`)).keys()]
        expect(pids).not.toContain(String(killed))
      }, 60_000)
      expect(starting.pid, `the owner is up:\n${starting.output}`).toBeDefined()
    } finally {
      await starting.kill()
      await rm(dir, { recursive: true, force: true })
    }
  }, 120_000)
})
