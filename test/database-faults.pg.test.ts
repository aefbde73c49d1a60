/**
 * Database faults (issue 4), against a PostgreSQL cluster of this suite's own so it can be
 * stopped, started and swapped:
 * - PostgreSQL restarted mid-stream, and the walsender terminated: Sluice reports `waiting`
 *   on /v1/health, answers requests that need the database with 503 + retry-after, reconnects
 *   with backoff and misses no change.
 * - The slot dropped, or another cluster behind the same URL: every shape is dropped, clients
 *   get 409 and end equal to the table of the database now served, and the log says why.
 */
import { chmod, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import pg from 'pg'
import { pino } from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadConfig } from '../src/config.js'
import { startEmbeddedPostgres, type EmbeddedCluster } from '../src/pg/embedded.js'
import { freePort } from '../src/pg/free-port.js'
import { startSluice, type SluiceServer } from '../src/server.js'
import { Follower } from './support/follower.js'
import { waitFor } from './support/wait.js'

let dir: string
let port: number
let cluster: EmbeddedCluster | undefined
let url: string
let sluice: SluiceServer
const logLines: { level: number; msg: string; problem?: string }[] = []

async function startCluster(name: string): Promise<void> {
  cluster = await startEmbeddedPostgres({ dir: join(dir, name), port })
  url = cluster.url
}

async function stopCluster(): Promise<void> {
  await cluster?.stop()
  cluster = undefined
}

async function sql<T extends pg.QueryResultRow = Record<string, string>>(text: string, values: unknown[] = []): Promise<T[]> {
  const client = new pg.Client({ connectionString: url })
  client.on('error', () => undefined) // the server going away mid-query: the query rejects too
  await client.connect()
  try {
    return (await client.query<T>(text, values)).rows
  } finally {
    await client.end()
  }
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sluice-faults-'))
  // Under root, PostgreSQL runs as the `postgres` user, which must reach the cluster's directory.
  await chmod(dir, 0o755)
  port = await freePort()
  await startCluster('a')
  await sql(`CREATE TABLE items (id int PRIMARY KEY, v int NOT NULL)`)
  await sql(`INSERT INTO items SELECT g, 0 FROM generate_series(1, 500) g`)
  const capture = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n').filter(Boolean)) logLines.push(JSON.parse(line) as never)
      done()
    },
  })
  sluice = await startSluice(
    {
      ...loadConfig({}),
      port: 0,
      host: '127.0.0.1',
      dataDir: join(dir, 'sluice'),
      databaseUrl: url,
      longPollMs: 1_000,
    },
    pino({ level: 'info' }, capture),
  )
}, 120_000)

afterAll(async () => {
  await sluice?.stop()
  await stopCluster()
  if (dir) await rm(dir, { recursive: true, force: true })
})

const shapeUrl = () => `${sluice.url}/v1/shape`

/** Writes transactions until stopped, riding out the moments the database is down. */
function startWriters(): { stop(): Promise<void>; committed: () => number } {
  let stopped = false
  let committed = 0
  const running = (async () => {
    let next = 10_000
    while (!stopped) {
      try {
        const id = next++
        await sql(`WITH a AS (INSERT INTO items VALUES ($1, 1)) UPDATE items SET v = v + 1 WHERE id = $2`, [id, 1 + (id % 500)])
        committed++
      } catch {
        await new Promise((resolve) => setTimeout(resolve, 100))
      }
    }
  })()
  return {
    async stop() {
      stopped = true
      await running
    },
    committed: () => committed,
  }
}

async function expectEqualToTable(follower: Follower): Promise<void> {
  await waitFor(async () => {
    await follower.catchUp()
    const rows = await sql<{ id: string; v: string }>(`SELECT id::text, v::text FROM items`)
    expect(follower.rows.size).toBe(rows.length)
    for (const row of rows) expect(follower.rows.get(`"public"."items"/"${row.id}"`)).toEqual(row)
  }, 30_000, 200)
  expect(new Set(follower.changeIds).size).toBe(follower.changeIds.length)
}

async function health(): Promise<{ status: number; body: unknown; retryAfter: string | null }> {
  const response = await fetch(`${sluice.url}/v1/health`)
  return { status: response.status, body: await response.json(), retryAfter: response.headers.get('retry-after') }
}

describe('PostgreSQL restarted mid-stream', () => {
  it('reports waiting, answers 503 + retry-after for new shapes, then resumes without missing a change', async () => {
    const follower = new Follower(shapeUrl, { table: 'items' })
    await follower.catchUp()
    const writers = startWriters()
    try {
      await waitFor(() => expect(writers.committed()).toBeGreaterThan(20))
      await restartWithChecks(follower)
      await waitFor(() => expect(writers.committed()).toBeGreaterThan(60), 20_000)
    } finally {
      await writers.stop()
    }
    await expectEqualToTable(follower)
    expect(follower.refetches).toBe(0)
  })
})

/** Stops PostgreSQL, checks what clients see meanwhile, starts it again. */
async function restartWithChecks(follower: Follower): Promise<void> {
  await stopCluster()
  try {
    await waitFor(async () => expect(await health()).toEqual({ status: 503, body: { status: 'waiting' }, retryAfter: expect.stringMatching(/^[1-9]/) }))
    // A new shape needs the database: 503 with retry-after, never a 500.
    const fresh = await fetch(`${shapeUrl()}?table=items&offset=-1&replica=full`)
    expect(fresh.status, await fresh.clone().text()).toBe(503)
    expect(Number(fresh.headers.get('retry-after'))).toBeGreaterThan(0)
    expect(fresh.headers.get('surrogate-control')).toBe('no-store')
    // A client of an existing shape keeps reading what storage holds.
    expect(await follower.step()).toBe(200)
  } finally {
    await startCluster('a')
  }
  await waitFor(async () => expect((await health()).body).toEqual({ status: 'active' }), 30_000, 100)
}

describe('walsender terminated', () => {
  it('reconnects and misses no change', async () => {
    const follower = new Follower(shapeUrl, { table: 'items' })
    await follower.catchUp()
    const writers = startWriters()
    try {
      for (let i = 0; i < 3; i++) {
        await new Promise((resolve) => setTimeout(resolve, 300))
        // Wait for the walsender of the reconnected stream, then cut it again.
        await waitFor(async () => {
          const killed = await sql<{ ok: boolean }>(`SELECT pg_terminate_backend(active_pid) AS ok FROM pg_replication_slots WHERE slot_name = 'sluice' AND active`)
          expect(killed).toEqual([{ ok: true }])
        }, 20_000, 50)
      }
      await waitFor(async () => expect((await health()).body).toEqual({ status: 'active' }), 30_000, 100)
    } finally {
      await writers.stop()
    }
    await expectEqualToTable(follower)
    expect(follower.refetches).toBe(0)
  })
})

describe('replication history lost', () => {
  it('drops every shape when the slot is dropped: clients get 409 and refetch', async () => {
    const follower = new Follower(shapeUrl, { table: 'items' })
    await follower.catchUp()
    const handle = follower.handle
    logLines.length = 0
    // Writes while the slot is gone are lost to the stream: exactly the case that needs a refetch.
    await waitFor(async () => {
      await sql(`SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = 'sluice' AND active`)
      await sql(`SELECT pg_drop_replication_slot('sluice')`)
    }, 10_000, 20)
    await sql(`UPDATE items SET v = v + 100 WHERE id <= 10`)

    await waitFor(async () => expect((await health()).body).toEqual({ status: 'active' }), 30_000, 100)
    await expectEqualToTable(follower)
    expect(follower.refetches).toBe(1)
    expect(follower.handle).not.toBe(handle)
    const problem = logLines.find((line) => line.problem === 'slot-missing')
    expect(problem?.level).toBe(50)
    expect(problem?.msg).toMatch(/no longer exists.*Every shape is dropped; clients get 409/)
  })

  it('drops every shape when another cluster answers at the same URL', async () => {
    const follower = new Follower(shapeUrl, { table: 'items' })
    await follower.catchUp()
    const handle = follower.handle
    logLines.length = 0

    await stopCluster()
    await startCluster('b')
    await sql(`CREATE TABLE items (id int PRIMARY KEY, v int NOT NULL)`)
    await sql(`INSERT INTO items SELECT g, 7 FROM generate_series(1, 30) g`)

    await waitFor(async () => expect((await health()).body).toEqual({ status: 'active' }), 30_000, 100)
    await expectEqualToTable(follower)
    expect(follower.refetches).toBe(1)
    expect(follower.handle).not.toBe(handle)
    expect(follower.rows.size).toBe(30)
    const problem = logLines.find((line) => line.problem === 'system-changed')
    expect(problem?.level).toBe(50)
    expect(problem?.msg).toMatch(/different PostgreSQL cluster/)
  })
})
