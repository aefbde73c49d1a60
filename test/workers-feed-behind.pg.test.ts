/**
 * A client whose next request reaches a worker behind the one before (docs/ARCHITECTURE.md I4,
 * I27). With `SLUICE_WORKERS=2`, one worker holds the owner's messages (`support/hold-owner-messages.ts`)
 * while the other answers a long-polling client (`@electric-sql/client`) the first chunk of a
 * transaction larger than a chunk; the client's next requests go to the worker held back, whose
 * long-polls time out there before its feed brings the transaction:
 * - none of its answers says up-to-date meanwhile, so every state the client shows at an
 *   up-to-date has all of the transaction or none of it;
 * - once the held feed is handed over, the client gets the rest from that worker and ends equal
 *   to PostgreSQL.
 */
import { isChangeMessage, isControlMessage, ShapeStream, type Row } from '@electric-sql/client'
import { Client as HttpClient } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { ChildSluice } from './support/child-sluice.js'
import { createTestDatabase, type TestDatabase } from './support/database.js'
import { shapeOf } from './support/electric.js'
import { holdAnnouncement } from './support/hold-owner-messages.js'
import { waitFor } from './support/wait.js'
import { startTwoWorkers, stopTwoWorkers } from './support/workers-sluice.js'

const ROWS = 200
/** The transaction's update is some 40 kB of entries: about ten chunks. */
const CHUNK_BYTES = 4096
/** Short, so the held-back worker's long-polls end while its feed is still held. */
const LONG_POLL_MS = 300

let db: TestDatabase
let sluice: ChildSluice

beforeAll(async () => {
  db = await createTestDatabase()
  await db.pool.query(`CREATE TABLE items (id int PRIMARY KEY, title text NOT NULL)`)
  await db.pool.query(`INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, ${ROWS}) g`)
  sluice = await startTwoWorkers(db, 'workers_behind', { SLUICE_CHUNK_BYTES: String(CHUNK_BYTES), SLUICE_LONG_POLL_MS: String(LONG_POLL_MS) }, [
    new URL('./support/hold-owner-messages.ts', import.meta.url),
  ])
}, 120_000)

afterAll(() => stopTwoWorkers(sluice, db))

/** A connection of its own, and the worker the kernel handed it to. */
interface Connection {
  readonly dispatcher: HttpClient
  readonly worker: string
}

/** One request on the dispatcher's connection; says which worker answered. */
async function workerOn(dispatcher: HttpClient, path: string): Promise<string> {
  const { headers, body } = await dispatcher.request({ path, method: 'GET' })
  await body.dump()
  return String(headers['x-sluice-worker'])
}

/**
 * A kept-alive connection to each worker (new ones until both have answered; the rest closed).
 * Sluice says it listens once one worker does: under load the other may still be starting.
 */
async function connectionToEachWorker(): Promise<[Connection, Connection]> {
  const connections = new Map<string, Connection>()
  await waitFor(async () => {
    const dispatcher = new HttpClient(sluice.baseUrl)
    const worker = await workerOn(dispatcher, '/v1/health')
    if (connections.has(worker)) await dispatcher.destroy()
    else connections.set(worker, { dispatcher, worker })
    expect(connections.size, 'connections reached both workers').toBe(2)
  }, 60_000, 0)
  const [first, second] = connections.values()
  return [first!, second!]
}

/** SIGUSR2 to the worker switches its hold; resolves once it says it has. */
async function switchHold(worker: string, holding: boolean): Promise<void> {
  const announced = holdAnnouncement(Number(worker), holding)
  process.kill(Number(worker), 'SIGUSR2')
  await waitFor(() => expect(sluice.output).toContain(announced), 10_000)
}

interface Answer {
  /** The worker the request was sent to. */
  readonly to: 'ahead' | 'behind'
  /** The worker that answered. */
  readonly worker: string | null
  readonly offset: string | null
  readonly upToDate: boolean
  /** Answered while the worker behind held its feed. */
  readonly held: boolean
}

describe('SLUICE_WORKERS=2, one worker’s feed held back', () => {
  it('gives the client no up-to-date inside a transaction another worker began answering, then the rest', async () => {
    const [ahead, behind] = await connectionToEachWorker()
    const moment = { held: false }
    let to = ahead
    const answers: Answer[] = []
    const fetchClient: typeof fetch = async (input, init) => {
      const connection = to
      // Node's fetch takes undici's `dispatcher`, which its RequestInit type does not list.
      const response = await fetch(input, { ...init, dispatcher: connection.dispatcher } as unknown as RequestInit)
      const { headers } = response
      const upToDate = headers.has('electric-up-to-date')
      answers.push({ to: connection === ahead ? 'ahead' : 'behind', worker: headers.get('x-sluice-worker'), offset: headers.get('electric-offset'), upToDate, held: moment.held })
      // The first answer since the hold without an up-to-date is a chunk ending inside the
      // transaction: the next request goes to the worker that has not taken it in.
      if (moment.held && connection === ahead && response.status === 200 && !upToDate) to = behind
      return response
    }
    const stream = new ShapeStream({ url: sluice.shapeUrl, params: { table: 'items' }, fetchClient })
    const shape = shapeOf(stream)
    const moved = new Set<string>()
    const movedAtUpToDate: number[] = []
    stream.subscribe((messages) => {
      for (const message of messages) {
        if (isChangeMessage(message) && String(message.value['title']).startsWith('moved ')) moved.add(message.key)
        else if (isControlMessage(message) && message.headers.control === 'up-to-date') movedAtUpToDate.push(moved.size)
      }
    })
    try {
      expect(await shape.rows).toHaveLength(ROWS)
      // The worker held back has bound the shape before it is held: only the feed is missing.
      expect(await workerOn(behind.dispatcher, `/v1/shape?table=items&offset=-1`)).toBe(behind.worker)

      await switchHold(behind.worker, true)
      // Its connection, idle since, is kept alive: one the server closed would reconnect to either worker.
      expect(await workerOn(behind.dispatcher, '/v1/health')).toBe(behind.worker)
      moment.held = true
      await db.pool.query(`UPDATE items SET title = 'moved ' || id || ' ' || repeat('x', 150)`)
      await waitFor(() => expect(answers.filter((a) => a.held && a.to === 'behind').length, 'long-polls answered by the worker held back').toBeGreaterThan(0), 30_000)
      // Cleared first: what the worker answers once it has the feed may come before the test hears it has.
      moment.held = false
      await switchHold(behind.worker, false)

      const { rows } = await db.pool.query<Row>(`SELECT id, title FROM items ORDER BY id`)
      const byId = (all: readonly Row[]) => [...all].sort((a, b) => Number(a['id']) - Number(b['id']))
      await waitFor(() => expect(byId(shape.currentRows)).toEqual(rows), 30_000)
      await waitFor(() => expect(movedAtUpToDate.at(-1)).toBe(ROWS), 10_000)

      expect(movedAtUpToDate.filter((n) => n !== 0 && n !== ROWS), 'rows of the transaction at an up-to-date (all or none)').toEqual([])
      const toBehind = answers.filter((a) => a.to === 'behind')
      expect(new Set(toBehind.map((a) => a.worker)), 'the requests sent to the worker held back reached it').toEqual(new Set([behind.worker]))
      expect(toBehind.filter((a) => a.held && a.upToDate), 'up-to-dates from the worker held back while it lacked the transaction').toEqual([])
      expect(toBehind.some((a) => !a.held), 'the rest came from the worker held back once its feed came').toBe(true)
    } finally {
      stream.unsubscribeAll()
      await Promise.all([ahead.dispatcher.destroy(), behind.dispatcher.destroy()])
    }
  })
})
