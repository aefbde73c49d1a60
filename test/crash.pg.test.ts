/**
 * Crash safety (issue 4): ten times, writers run multi-row transactions (some of 20,000 rows,
 * some while a big table is being snapshotted), Sluice is killed with SIGKILL at a random
 * moment and restarted on the same data directory. After every kill:
 * - the slot's `confirmed_flush_lsn` is not ahead of the durable LSN storage holds;
 * and after every restart:
 * - clients resume from their last (handle, offset) with no 409, end equal to the table, and
 *   never receive a change twice;
 * - every complete chunk fetched before a crash returns the same bytes after it.
 */
import { createHash } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { parseLsn } from '../src/pg/lsn.js'
import { ShapeLogStore } from '../src/storage/shape-log-store.js'
import { ChildSluice } from './support/child-sluice.js'
import { createTestDatabase, type TestDatabase } from './support/database.js'
import { Follower } from './support/follower.js'

const ROUNDS = 10
/** SQLSTATE 40P01. */
const DEADLOCK_DETECTED = '40P01'
const BASE_ROWS = 20_000
const BIG_ROWS = 80_000
const CHUNK_BYTES = 256 * 1024

let db: TestDatabase
let dataDir: string
let sluice: ChildSluice
const slot = `crash_${process.pid}`

beforeAll(async () => {
  db = await createTestDatabase()
  await db.pool.query(`CREATE TABLE items (id bigint PRIMARY KEY, v int NOT NULL, note text)`)
  await db.pool.query(`INSERT INTO items SELECT g, 0, 'base' FROM generate_series(1, ${BASE_ROWS}) g`)
  await db.pool.query(`CREATE TABLE big (id int PRIMARY KEY, payload text)`)
  await db.pool.query(`INSERT INTO big SELECT g, repeat(md5(g::text), 3) FROM generate_series(1, ${BIG_ROWS}) g`)
  dataDir = await mkdtemp(join(tmpdir(), 'sluice-crash-'))
  sluice = new ChildSluice({
    DATABASE_URL: db.url,
    SLUICE_DATA_DIR: dataDir,
    SLUICE_REPLICATION_SLOT: slot,
    SLUICE_PUBLICATION: slot,
    SLUICE_CHUNK_BYTES: String(CHUNK_BYTES),
    SLUICE_ALLOW_SHAPE_DELETION: 'true',
  })
}, 120_000)

afterAll(async () => {
  await sluice?.kill()
  await db?.drop()
  if (dataDir) await rm(dataDir, { recursive: true, force: true })
})

/** Writers: multi-row transactions of every kind; `large()` commits 20,000 changes at once. */
class Writers {
  #stop = false
  #running: Promise<void>[] = []
  #nextId = BASE_ROWS + 1
  transactions = 0

  start(count: number): void {
    this.#stop = false
    for (let i = 0; i < count; i++) this.#running.push(this.#loop())
  }

  async stop(): Promise<void> {
    this.#stop = true
    await Promise.all(this.#running)
    this.#running = []
  }

  /** Commits one 20,000-row transaction; returns the end of WAL after it. */
  async large(): Promise<bigint> {
    for (;;) {
      try {
        await db.pool.query(`UPDATE items SET v = v + 1, note = 'large' WHERE id <= ${BASE_ROWS}`)
        break
      } catch (error) {
        if ((error as { code?: string }).code !== DEADLOCK_DETECTED) throw error
      }
    }
    this.transactions++
    const { rows } = await db.pool.query<{ lsn: string }>(`SELECT pg_current_wal_lsn()::text AS lsn`)
    return parseLsn(rows[0]!.lsn)
  }

  async #loop(): Promise<void> {
    const client = await db.pool.connect()
    try {
      while (!this.#stop) {
        await client.query('BEGIN')
        const n = 1 + Math.floor(Math.random() * 40)
        const first = this.#nextId
        this.#nextId += n
        try {
          await client.query(`INSERT INTO items SELECT g, 1, 'new' FROM generate_series(${first}, ${first + n - 1}) g`)
          const from = 1 + Math.floor(Math.random() * (this.#nextId - 20))
          await client.query(`UPDATE items SET v = v + 1 WHERE id BETWEEN ${from} AND ${from + 10}`)
          const gone = BASE_ROWS + 1 + Math.floor(Math.random() * Math.max(1, this.#nextId - BASE_ROWS - 10))
          await client.query(`DELETE FROM items WHERE id BETWEEN ${gone} AND ${gone + 3}`)
          if (Math.random() < 0.3) await client.query(`UPDATE big SET payload = md5(random()::text) WHERE id = ${1 + Math.floor(Math.random() * BIG_ROWS)}`)
          await client.query('COMMIT')
          this.transactions++
        } catch (error) {
          // Writers' overlapping ranges can deadlock each other (or the large update); PostgreSQL
          // aborts one of them, which is the writers' business, not Sluice's.
          if ((error as { code?: string }).code !== DEADLOCK_DETECTED) throw error
          await client.query('ROLLBACK')
        }
        await sleep(10)
      }
    } finally {
      client.release()
    }
  }
}

/** A follower that keeps polling (non-live) across crashes, ignoring refused connections. */
function keepFollowing(follower: Follower, signal: AbortSignal, chunks: Map<string, string>): Promise<void> {
  return (async () => {
    while (!signal.aborted) {
      try {
        const url = `${sluice.shapeUrl}?${new URLSearchParams({ ...follower.params, offset: follower.offset, ...(follower.handle ? { handle: follower.handle } : {}) })}`
        const status = await follower.step()
        if (status === 200) await remember(url, chunks)
        if (status === 200 && follower.upToDate) await sleep(20)
        if (status !== 200 && status !== 409) await sleep(50)
      } catch {
        await sleep(50) // the server is down or was killed mid-response
      }
    }
  })()
}

/** Keeps the bytes of complete chunks (responses without up-to-date) to compare after crashes. */
async function remember(url: string, chunks: Map<string, string>): Promise<void> {
  if (chunks.size >= 200 || url.includes('offset=-1')) return
  const response = await fetch(url).catch(() => undefined)
  if (!response || response.status !== 200) return
  const body = await response.text()
  if (response.headers.get('electric-up-to-date') === null) chunks.set(url, digest(body))
}

function digest(text: string): string {
  return createHash('sha256').update(text).digest('hex')
}

async function slotConfirmedFlush(): Promise<bigint> {
  // The walsender of the killed process must be gone, so no acknowledgement is still in flight.
  for (let i = 0; ; i++) {
    const { rows } = await db.pool.query<{ active: boolean; lsn: string | null }>(
      `SELECT active, confirmed_flush_lsn::text AS lsn FROM pg_replication_slots WHERE slot_name = $1`,
      [slot],
    )
    if (rows[0] && !rows[0].active) return rows[0].lsn === null ? 0n : parseLsn(rows[0].lsn)
    if (i > 200) throw new Error('the slot stayed active after the kill')
    await sleep(25)
  }
}

function durableLsnOnDisk(): bigint {
  const store = ShapeLogStore.open(join(dataDir, 'shapes'), { chunkBytes: CHUNK_BYTES })
  const durable = store.durableLsn
  void store.close()
  return durable
}

/** Waits until Sluice's durable LSN (from /metrics) reaches the end of WAL as of now. */
async function waitForReplication(): Promise<void> {
  const { rows } = await db.pool.query<{ lsn: string }>(`SELECT (pg_current_wal_lsn() - '0/0')::text AS lsn`)
  const target = Number(rows[0]!.lsn)
  for (const deadline = Date.now() + 30_000; ; ) {
    const text = await (await fetch(`${sluice.baseUrl}/metrics`)).text()
    const durable = Number(/^sluice_durable_lsn ([0-9.e+]+)$/m.exec(text)?.[1] ?? '0')
    if (durable >= target) return
    if (Date.now() > deadline) throw new Error(`Sluice did not reach LSN ${target} (at ${durable})`)
    await sleep(25)
  }
}

async function expectEqualToTable(follower: Follower, table: 'items' | 'big'): Promise<void> {
  await follower.catchUp()
  const columns = table === 'items' ? 'id::text, v::text, note' : 'id::text, payload'
  const { rows } = await db.pool.query<Record<string, string>>(`SELECT ${columns} FROM ${table}`)
  const expected = new Map(rows.map((row) => [`"public"."${table}"/"${row['id']}"`, row]))
  expect(follower.rows.size, `${table}: row count`).toBe(expected.size)
  for (const [key, row] of expected) {
    if (JSON.stringify(follower.rows.get(key)) !== JSON.stringify(row)) {
      expect(follower.rows.get(key), `${table}: ${key}`).toEqual(row)
    }
  }
  expect(new Set(follower.changeIds).size, `${table}: a change was delivered twice`).toBe(follower.changeIds.length)
}

describe('SIGKILL at random moments', () => {
  it(`loses nothing and repeats nothing over ${ROUNDS} crashes`, async () => {
    const started = Date.now()
    await sluice.start()
    const items = new Follower(() => sluice.shapeUrl, { table: 'items' })
    const full = new Follower(() => sluice.shapeUrl, { table: 'items', replica: 'full' })
    const chunks = new Map<string, string>()
    await items.catchUp()
    await full.catchUp()
    const writers = new Writers()
    const kinds: string[] = []
    let snapshotsCut = 0
    let largeCut = 0

    for (let round = 0; round < ROUNDS; round++) {
      const kind = round % 3 === 0 ? 'snapshot' : round % 3 === 1 ? 'large' : 'random'
      kinds.push(kind)
      const following = new AbortController()
      const followers = [keepFollowing(items, following.signal, chunks), keepFollowing(full, following.signal, chunks)]
      writers.start(2)
      let bigFollower: Follower | undefined
      let largeEnd: bigint | undefined
      if (kind === 'snapshot') {
        // A new snapshot of the big table each time: delete its shape, then ask for it again.
        await fetch(`${sluice.shapeUrl}?table=big`, { method: 'DELETE' })
        bigFollower = new Follower(() => sluice.shapeUrl, { table: 'big' })
        followers.push(keepFollowing(bigFollower, following.signal, new Map()))
        // Kill once the snapshot is under way: its first chunk is out.
        for (const deadline = Date.now() + 10_000; bigFollower.offset === '-1' && Date.now() < deadline; ) await sleep(5)
        await sleep(Math.random() * 100)
      } else if (kind === 'large') {
        await sleep(Math.random() * 300)
        largeEnd = await writers.large()
        await sleep(Math.random() * 150)
      } else {
        await sleep(200 + Math.random() * 1200)
      }
      await sluice.kill()

      const confirmed = await slotConfirmedFlush()
      const durable = durableLsnOnDisk()
      expect(confirmed, `round ${round} (${kind}): slot acknowledged past storage`).toBeLessThanOrEqual(durable)
      if (largeEnd !== undefined && durable < largeEnd) largeCut++

      // Writes go on while Sluice is down, then it comes back on the same data directory.
      await sleep(100)
      const t0 = Date.now()
      await sluice.start()
      const t1 = Date.now()
      await writers.stop()
      following.abort()
      await Promise.all(followers)
      await waitForReplication()
      const t2 = Date.now()

      await expectEqualToTable(items, 'items')
      await expectEqualToTable(full, 'items')
      if (bigFollower) {
        await expectEqualToTable(bigFollower, 'big')
        if (bigFollower.refetches > 0) snapshotsCut++ // its snapshot was unfinished at the kill
      }
      if (process.env['CRASH_TIMING']) console.info(`round ${round} ${kind}: start ${t1 - t0} ms, replicate ${t2 - t1} ms, check ${Date.now() - t2} ms`)
      expect(items.refetches, `round ${round}: a client had to refetch`).toBe(0)
      expect(full.refetches).toBe(0)
    }

    // Every complete chunk handed out before a crash still has the same bytes.
    expect(chunks.size).toBeGreaterThan(0)
    for (const [url, hash] of chunks) {
      const now = new URL(url)
      now.port = String(sluice.port)
      const response = await fetch(now)
      expect(response.status, url).toBe(200)
      expect(digest(await response.text()), url).toBe(hash)
    }
    console.info(
      `crash test: ${ROUNDS} rounds (${kinds.join(', ')}); killed during ${snapshotsCut} snapshots and before ` +
        `${largeCut} large transactions were durable; ${writers.transactions} writer transactions; ` +
        `${chunks.size} chunks re-checked; ${Date.now() - started} ms`,
    )
  }, 240_000)
})

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}
