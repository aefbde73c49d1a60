/**
 * No gap, no duplicate: writers run multi-row transactions while shapes on the same table are
 * created (and dropped) at random moments. Every shape must end equal to the table, no change
 * may be delivered twice, and no transaction visible in a shape's snapshot may also be in its log.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { commitWindowWidened, widenCommitWindow } from './support/commit-window.js'
import { Follower } from './support/follower.js'
import { startTestSluice, waitForReplication, type TestSluice } from './support/sluice.js'

let sluice: TestSluice

beforeAll(async () => {
  sluice = await startTestSluice({ allowShapeDeletion: true, chunkBytes: 4096 })
  await sluice.db.pool.query(`CREATE TABLE accounts (id int PRIMARY KEY, v int NOT NULL, note text)`)
  await sluice.db.pool.query(`INSERT INTO accounts SELECT g, g, 'seed' FROM generate_series(1, 200) g`)
})

afterAll(async () => {
  await sluice?.close()
})

const WRITERS = 3
const WRITE_MS = 4_000

async function writer(index: number, stopAt: number): Promise<number> {
  const client = await sluice.db.pool.connect()
  await widenCommitWindow(client)
  let nextId = 10_000 * (index + 1)
  let transactions = 0
  try {
    while (Date.now() < stopAt) {
      await client.query('BEGIN')
      const ops = 1 + Math.floor(Math.random() * 5)
      for (let i = 0; i < ops; i++) {
        const pick = Math.random()
        if (pick < 0.4) {
          await client.query('INSERT INTO accounts VALUES ($1, $2, $3)', [nextId++, i, `w${index}`])
        } else if (pick < 0.8) {
          await client.query(`UPDATE accounts SET v = v + 1, note = $2 WHERE id = (SELECT id FROM accounts ORDER BY random() LIMIT 1 FOR UPDATE SKIP LOCKED) AND $1::int IS NOT NULL`, [index, `u${index}`])
        } else {
          await client.query(`DELETE FROM accounts WHERE id = (SELECT id FROM accounts ORDER BY random() LIMIT 1 FOR UPDATE SKIP LOCKED)`)
        }
      }
      await client.query('COMMIT')
      transactions++
    }
  } finally {
    client.release()
  }
  return transactions
}

function visibleInSnapshot(xid: number, snapshot: { xmin: string; xmax: string; xip_list: string[] }): boolean {
  const x = BigInt(xid)
  const mod = (v: string) => BigInt(v) & 0xffff_ffffn
  return x < mod(snapshot.xmax) && !snapshot.xip_list.map(mod).includes(x)
}

describe('snapshot and log merge', () => {
  it('delivers every committed change exactly once while shapes come and go', async () => {
    const stopAt = Date.now() + WRITE_MS
    const writing = Promise.all(Array.from({ length: WRITERS }, (_, i) => writer(i, stopAt)))
    const followers: Follower[] = []
    const following: Promise<void>[] = []
    const controller = new AbortController()
    const replicas = ['default', 'full']

    const follow = async (follower: Follower) => {
      while (!controller.signal.aborted) {
        try {
          await follower.step({ live: true, signal: controller.signal })
        } catch (error) {
          if (!controller.signal.aborted) throw error
        }
      }
    }

    while (Date.now() < stopAt - 300) {
      await new Promise((resolve) => setTimeout(resolve, 100 + Math.random() * 400))
      const replica = replicas[Math.floor(Math.random() * replicas.length)]!
      if (Math.random() < 0.3) {
        // Drop the current shape of this definition so the next request builds a new one mid-stream.
        await fetch(`${sluice.shapeUrl()}?table=accounts&replica=${replica}`, { method: 'DELETE' })
      }
      const follower = new Follower(() => sluice.shapeUrl(), { table: 'accounts', replica })
      followers.push(follower)
      following.push(follow(follower))
    }
    const transactions = await writing
    // Paused commits (SLUICE_TEST_COMMIT_WINDOW_MS) leave time for far fewer.
    expect(transactions.reduce((a, b) => a + b, 0)).toBeGreaterThan(commitWindowWidened ? 3 : 30)

    const expected = await sluice.db.pool.query<{ id: string; v: string; note: string | null }>(
      `SELECT id::text, v::text, note FROM accounts ORDER BY accounts.id`,
    )
    await waitForReplication(sluice)
    // Acknowledged to PostgreSQL only what storage holds, and acknowledging does happen.
    const slot = await sluice.db.pool.query<{ flushed: string }>(
      `SELECT (confirmed_flush_lsn - '0/0')::text AS flushed FROM pg_replication_slots WHERE slot_name = $1`,
      [sluice.config.replicationSlot],
    )
    const flushed = BigInt(slot.rows[0]!.flushed)
    expect(flushed).toBeGreaterThan(0n)
    expect(flushed).toBeLessThanOrEqual(sluice.server.store.durableLsn)
    // Stop the live loops, then bring every follower to the head with plain requests.
    controller.abort()
    await Promise.allSettled(following)
    for (const follower of followers) {
      await follower.catchUp()
      const rows = [...follower.rows.values()].sort((a, b) => Number(a['id']) - Number(b['id']))
      expect(rows.map((r) => ({ id: r['id'], v: r['v'], note: r['note'] }))).toEqual(expected.rows)
      expect(new Set(follower.changeIds).size).toBe(follower.changeIds.length)
      const snapshot = follower.snapshotEnd!
      expect(snapshot).toBeDefined()
      expect(follower.xids.filter((xid) => visibleInSnapshot(xid, snapshot))).toEqual([])
    }
    expect(followers.length).toBeGreaterThan(3)
  })
})
