/**
 * Shared snapshots (docs/ARCHITECTURE.md I21, `shapes/snapshot-batch.ts`): hundreds of
 * `user_id = k` shapes asked for at once while writers run are answered from a few snapshot
 * queries, and each ends equal to PostgreSQL with no change twice and none its snapshot holds.
 * A whole-table snapshot that cannot go on leaves a connection to the small ones, and a shared
 * snapshot one shape's `where` fails ends with only that shape answered 400.
 */
import type pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Follower } from './support/follower.js'
import { startTestSluice, waitForReplication, type TestSluice } from './support/sluice.js'
import { waitFor } from './support/wait.js'

const USERS = 300
const WRITERS = 3

let sluice: TestSluice

beforeAll(async () => {
  sluice = await startTestSluice({ maxConcurrentSnapshots: 2, snapshotQueueLength: 1_000 })
  await sluice.db.pool.query(`CREATE TABLE orders (id int PRIMARY KEY, user_id int NOT NULL, v int NOT NULL)`)
  await sluice.db.pool.query(`CREATE INDEX ON orders (user_id)`)
  await sluice.db.pool.query(`INSERT INTO orders SELECT g, g % ${USERS}, g FROM generate_series(1, ${USERS * 3}) g`)
  await sluice.db.pool.query(`CREATE TABLE big (id int PRIMARY KEY, v int NOT NULL)`)
  await sluice.db.pool.query(`INSERT INTO big SELECT g, g FROM generate_series(1, 100) g`)
})

afterAll(async () => {
  await sluice?.close()
})

async function metric(name: string): Promise<number> {
  const text = await (await fetch(`${sluice.server.url}/metrics`)).text()
  return Number(new RegExp(`^${name} (\\d+)$`, 'm').exec(text)?.[1] ?? 0)
}

const snapshotQueries = () => metric('sluice_snapshot_queries_total')

function visibleInSnapshot(xid: number, snapshot: { xmin: string; xmax: string; xip_list: string[] }): boolean {
  const x = BigInt(xid)
  const mod = (v: string) => BigInt(v) & 0xffff_ffffn
  return x < mod(snapshot.xmax) && !snapshot.xip_list.map(mod).includes(x)
}

async function writer(index: number, stop: AbortSignal): Promise<number> {
  const client = await sluice.db.pool.connect()
  let nextId = 100_000 * (index + 1)
  let transactions = 0
  try {
    while (!stop.aborted) {
      await client.query('BEGIN')
      for (let i = 0; i < 3; i++) {
        const user = Math.floor(Math.random() * USERS)
        const pick = Math.random()
        if (pick < 0.3) await client.query('INSERT INTO orders VALUES ($1, $2, 0)', [nextId++, user])
        // Some updates move a row to another user: a move out of one shape and into another.
        else if (pick < 0.8) await client.query(`UPDATE orders SET v = v + 1, user_id = CASE WHEN random() < 0.2 THEN $2 ELSE user_id END WHERE id = (SELECT id FROM orders WHERE user_id = $1 LIMIT 1 FOR UPDATE SKIP LOCKED)`, [user, (user + 1) % USERS])
        else await client.query(`DELETE FROM orders WHERE id = (SELECT id FROM orders WHERE user_id = $1 LIMIT 1 FOR UPDATE SKIP LOCKED)`, [user])
      }
      await client.query('COMMIT')
      transactions++
    }
  } finally {
    client.release()
  }
  return transactions
}

/** Snapshots waiting for a table lock. */
const blockedSnapshots = `SELECT 1 FROM pg_locks l JOIN pg_stat_activity a USING (pid) WHERE l.relation = $1::regclass AND NOT l.granted AND a.query LIKE '%LOCK TABLE%'`

const follower = (where: string, table = 'orders') => new Follower(() => sluice.shapeUrl(), { table, where })

describe('shared snapshots', () => {
  it(`answer ${USERS} shapes created at once while writers run from a few queries, each equal to PostgreSQL`, async () => {
    // The table joins the publication first: a first shape waits out older transactions, the locker's too.
    await follower('user_id = -1').catchUp()
    const stop = new AbortController()
    const writing = Promise.all(Array.from({ length: WRITERS }, (_, i) => writer(i, stop.signal)))
    const locker: pg.PoolClient = await sluice.db.pool.connect()
    try {
      const queriesBefore = await snapshotQueries()
      // Held while the requests arrive, so that they all queue: how many share a query does not
      // depend on how fast this machine is. Writers wait on it too, and go on with the snapshots.
      await locker.query('BEGIN')
      await locker.query('LOCK TABLE orders IN ACCESS EXCLUSIVE MODE')
      const followers = Array.from({ length: USERS }, (_, user) => follower(`user_id = ${user}`))
      const answered = Promise.all(followers.map((f) => f.step()))
      // Two snapshots hold both connections, blocked on the lock; the rest wait for one.
      await waitFor(async () => expect(await metric('sluice_snapshots_waiting')).toBe(USERS - 2), 60_000)
      await locker.query('COMMIT')
      expect((await answered).filter((s) => s !== 200)).toEqual([])
      // The two that were blocked, then the 298 that waited, at most 256 to a query (300 without sharing).
      expect((await snapshotQueries()) - queriesBefore).toBe(4)
      // Changes keep coming after every snapshot, then stop.
      await Promise.all(followers.map((f) => f.catchUp()))
      stop.abort()
      expect((await writing).reduce((a, b) => a + b, 0)).toBeGreaterThan(10)
      await waitForReplication(sluice)

      const { rows } = await sluice.db.pool.query<{ id: string; user_id: string; v: string }>(`SELECT id::text, user_id::text, v::text FROM orders ORDER BY orders.id`)
      for (const [user, f] of followers.entries()) {
        await f.catchUp()
        const expected = rows.filter((r) => r.user_id === String(user))
        const got = [...f.rows.values()].sort((a, b) => Number(a['id']) - Number(b['id']))
        expect(got, `user_id = ${user}`).toEqual(expected)
        expect(new Set(f.changeIds).size).toBe(f.changeIds.length)
        expect(f.xids.filter((xid) => visibleInSnapshot(xid, f.snapshotEnd!))).toEqual([])
      }
    } finally {
      stop.abort()
      await locker.query('ROLLBACK').catch(() => undefined)
      locker.release()
      await writing.catch(() => undefined)
    }
  })

  it('keep a connection for small shapes while whole-table snapshots wait', async () => {
    // Both tables are in the publication before the lock: a first shape would wait for the locker.
    await follower('id = 1', 'big').catchUp()
    const locker: pg.PoolClient = await sluice.db.pool.connect()
    try {
      await locker.query('BEGIN')
      await locker.query('LOCK TABLE big IN ACCESS EXCLUSIVE MODE')
      // Two whole-table-lane snapshots: one blocks on the lock, the other waits for its lane.
      const large = [follower('v > 0', 'big'), follower('v > 1', 'big')]
      const largeDone = Promise.all(large.map((f) => f.catchUp()))
      await waitFor(async () => {
        const { rows } = await sluice.db.pool.query(blockedSnapshots, ['big'])
        expect(rows.length).toBe(1)
      })
      const small = Array.from({ length: 20 }, (_, i) => follower(`user_id = ${i} AND v >= 0`))
      await Promise.all(small.map((f) => f.catchUp()))
      for (const f of small) expect(f.snapshotEnd).toBeDefined()
      await locker.query('COMMIT')
      await largeDone
      expect(large[0]!.rows.size).toBe(100)
      expect(large[1]!.rows.size).toBe(99)
    } finally {
      locker.release()
    }
  })

  it('give a 400 only to the shape whose where fails, when it shared its snapshot', async () => {
    await sluice.db.pool.query(`INSERT INTO orders VALUES (999999, 7, 42)`)
    await waitForReplication(sluice)
    const locker: pg.PoolClient = await sluice.db.pool.connect()
    try {
      await locker.query('BEGIN')
      await locker.query('LOCK TABLE orders IN ACCESS EXCLUSIVE MODE')
      // Two snapshots block on the lock and take both connections; the rest queue together.
      const blocked = [follower('user_id = 20 AND v > -1'), follower('user_id = 21 AND v > -1')]
      const blockedDone = Promise.all(blocked.map((f) => f.step()))
      await waitFor(async () => {
        const { rows } = await sluice.db.pool.query(blockedSnapshots, ['orders'])
        expect(rows.length).toBe(2)
      })
      const good = Array.from({ length: 10 }, (_, i) => follower(`user_id = ${i} AND v > -2`))
      const bad = follower('user_id = 7 AND 1 / (v - 42) > 0')
      const queriesBefore = await snapshotQueries()
      const answers = Promise.all([...good, bad].map((f) => f.step()))
      await waitFor(async () => expect(await metric('sluice_snapshots_waiting')).toBe(good.length + 1))
      await locker.query('COMMIT')
      expect(await blockedDone).toEqual([200, 200])
      // The shared query fails: every shape in it is dropped and its client refetches.
      expect(await answers).toEqual([...good, bad].map(() => 409))
      // Asked for again, each is taken alone: the good ones are served, the bad one gets its 400.
      const { rows } = await sluice.db.pool.query<{ user_id: string; n: string }>(`SELECT user_id::text, count(*)::text AS n FROM orders WHERE user_id < 10 GROUP BY 1`)
      for (const [i, f] of good.entries()) {
        await f.catchUp()
        expect(f.rows.size).toBe(Number(rows.find((r) => r.user_id === String(i))?.n ?? 0))
      }
      expect(await bad.step()).toBe(400)
      // The shared query, then each shape alone.
      expect((await snapshotQueries()) - queriesBefore).toBe(1 + good.length + 1)
    } finally {
      locker.release()
    }
  })
})
