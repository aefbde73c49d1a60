/**
 * Admission control (docs/ARCHITECTURE.md I22, `http/admission.ts`): requests for new shapes and
 * requests for existing ones have budgets of their own; past one, a request gets 503 with a
 * jittered `retry-after` at once while the other budget goes on serving. And at SLUICE_MAX_SHAPES,
 * more shapes asked for at once than fit all end served, evicting one another, never a 5xx.
 */
import type pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Follower } from './support/follower.js'
import { startTestSluice, type TestSluice } from './support/sluice.js'
import { waitFor } from './support/wait.js'

let sluice: TestSluice

beforeAll(async () => {
  sluice = await startTestSluice({ maxInitialRequests: 2, maxExistingRequests: 1, maxConcurrentSnapshots: 2 })
  for (const table of ['a', 'b']) {
    await sluice.db.pool.query(`CREATE TABLE ${table} (id int PRIMARY KEY, v int NOT NULL)`)
    await sluice.db.pool.query(`INSERT INTO ${table} SELECT g, g FROM generate_series(1, 50) g`)
  }
})

afterAll(async () => {
  await sluice?.close()
})

async function inFlight(kind: 'initial' | 'existing'): Promise<number> {
  const text = await (await fetch(`${sluice.server.url}/metrics`)).text()
  return Number(new RegExp(`^sluice_requests_in_flight\\{kind="${kind}"\\} (\\d+)$`, 'm').exec(text)?.[1] ?? 0)
}

const url = (table: string, where: string) => `${sluice.shapeUrl()}?table=${table}&offset=-1&where=${encodeURIComponent(where)}`

/** Runs `body` while `table` is locked, so snapshots of it wait (and their requests stay in flight). */
async function whileLocked(table: string, body: () => Promise<void>): Promise<void> {
  const locker: pg.PoolClient = await sluice.db.pool.connect()
  try {
    await locker.query('BEGIN')
    await locker.query(`LOCK TABLE ${table} IN ACCESS EXCLUSIVE MODE`)
    await body()
  } finally {
    await locker.query('ROLLBACK')
    locker.release()
  }
}

async function expectOverloaded(response: Response, variable: string): Promise<void> {
  expect(response.status).toBe(503)
  expect(Number(response.headers.get('retry-after'))).toBeGreaterThanOrEqual(6)
  expect(response.headers.get('cache-control')).toContain('no-store')
  expect(((await response.json()) as { message: string }).message).toContain(variable)
}

describe('admission control', () => {
  it('answers 503 to new shapes past SLUICE_MAX_CONCURRENT_REQUESTS_INITIAL while existing shapes are served', async () => {
    // Both tables join the publication before the lock (a first shape waits out older transactions).
    const existing = new Follower(() => sluice.shapeUrl(), { table: 'b', where: 'v > 0' })
    await existing.catchUp()
    await (await fetch(url('a', 'id = 50'))).text()
    let blocked: Promise<Response[]> | undefined
    await whileLocked('a', async () => {
      blocked = Promise.all([fetch(url('a', 'id = 1')), fetch(url('a', 'id = 2'))])
      await waitFor(async () => expect(await inFlight('initial')).toBe(2))
      await expectOverloaded(await fetch(url('b', 'id = 3')), 'SLUICE_MAX_CONCURRENT_REQUESTS_INITIAL')
      expect(await existing.step()).toBe(200)
    })
    expect((await blocked!).map((r) => r.status)).toEqual([200, 200])
    expect((await fetch(url('b', 'id = 3'))).status).toBe(200)
  })

  it('answers 503 to existing shapes past SLUICE_MAX_CONCURRENT_REQUESTS_EXISTING while new shapes are created', async () => {
    let waiting: Promise<Response[]> | undefined
    await whileLocked('a', async () => {
      // The first request creates the shape; the second finds it and waits for its snapshot.
      const first = fetch(url('a', 'id = 4'))
      await waitFor(async () => {
        const { rows } = await sluice.db.pool.query(`SELECT 1 FROM pg_locks l JOIN pg_stat_activity s USING (pid) WHERE l.relation = 'a'::regclass AND NOT l.granted AND s.query LIKE '%LOCK TABLE%'`)
        expect(rows).toHaveLength(1)
      })
      const second = fetch(url('a', 'id = 4'))
      await waitFor(async () => expect(await inFlight('existing')).toBe(1))
      waiting = Promise.all([first, second])
      await expectOverloaded(await fetch(url('a', 'id = 4')), 'SLUICE_MAX_CONCURRENT_REQUESTS_EXISTING')
      expect((await fetch(url('b', 'id = 5'))).status).toBe(200)
    })
    expect((await waiting!).map((r) => r.status)).toEqual([200, 200])
  })

  it('serves every one of more shapes asked for at once than SLUICE_MAX_SHAPES keeps', async () => {
    await sluice.restart({ overrides: { maxShapes: 10, maxInitialRequests: 300, maxExistingRequests: 10_000 } })
    const followers = Array.from({ length: 15 }, (_, i) => new Follower(() => sluice.shapeUrl(), { table: 'a', where: `id = ${i + 1}` }))
    await Promise.all(followers.map((f) => f.catchUp()))
    for (const [i, f] of followers.entries()) expect([...f.rows.keys()], `id = ${i + 1}`).toEqual([`"public"."a"/"${i + 1}"`])
    expect(sluice.server.manager.size).toBeLessThanOrEqual(10)
  })
})
