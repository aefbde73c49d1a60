/**
 * Shape lifecycle limits: SLUICE_MAX_SHAPES evicts the least recently used shape (its clients
 * get 409, storage shrinks), and the snapshot queue refuses new shapes with 503 when full.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Follower } from './support/follower.js'
import { startTestSluice, type TestSluice } from './support/sluice.js'
import { waitFor } from './support/wait.js'

let sluice: TestSluice

beforeAll(async () => {
  sluice = await startTestSluice({ maxShapes: 3, maxConcurrentSnapshots: 1 })
  for (const name of ['t1', 't2', 't3', 't4']) {
    await sluice.db.pool.query(`CREATE TABLE ${name} (id int PRIMARY KEY, payload text)`)
    await sluice.db.pool.query(`INSERT INTO ${name} SELECT g, repeat('p', 200) FROM generate_series(1, 2000) g`)
  }
})

afterAll(async () => {
  await sluice?.close()
})

describe('SLUICE_MAX_SHAPES', () => {
  it('drops the least recently used shape to make room, and its storage with it', async () => {
    const followers = new Map<string, Follower>()
    for (const table of ['t1', 't2', 't3']) {
      const follower = new Follower(() => sluice.shapeUrl(), { table })
      await follower.catchUp()
      followers.set(table, follower)
    }
    // t1 is used again, so t2 is now the least recently used.
    await followers.get('t1')!.step()
    const sizeWithThree = sluice.server.store.sizeBytes()

    const t4 = new Follower(() => sluice.shapeUrl(), { table: 't4' })
    await t4.catchUp()
    expect(sluice.server.manager.size).toBe(3)
    // t2's log is gone: three shapes' worth of pages, not four.
    expect(sluice.server.store.sizeBytes()).toBeLessThan(sizeWithThree * 1.2)
    for (const follower of [followers.get('t1')!, followers.get('t3')!, t4]) expect(await follower.step()).toBe(200)

    const t2 = followers.get('t2')!
    const evictedHandle = t2.handle
    expect(await t2.step()).toBe(409)
    expect(t2.handle).not.toBe(evictedHandle)
    await t2.catchUp()
    expect(t2.rows.size).toBe(2000)
  })
})

describe('snapshot queue', () => {
  it('answers 503 with retry-after when every snapshot slot is busy and the queue is full', async () => {
    await sluice.restart({ overrides: { maxShapes: 100, maxConcurrentSnapshots: 1, snapshotQueueLength: 0 } })
    const locker = await sluice.db.pool.connect()
    try {
      // A lock that the snapshot's SELECT must wait for keeps the only snapshot slot busy.
      await locker.query('BEGIN')
      await locker.query('LOCK TABLE t3 IN ACCESS EXCLUSIVE MODE')
      const slow = fetch(`${sluice.shapeUrl()}?table=t3&offset=-1&replica=full`)
      // t3 is published already (the test above served it), so the one waiting is the snapshot.
      await waitFor(async () => {
        const { rows } = await sluice.db.pool.query(`SELECT pid FROM pg_locks WHERE relation = 't3'::regclass AND NOT granted`)
        expect(rows).toHaveLength(1)
      })
      const refused = await fetch(`${sluice.shapeUrl()}?table=t1&offset=-1&replica=full`)
      expect(refused.status).toBe(503)
      expect(Number(refused.headers.get('retry-after'))).toBeGreaterThanOrEqual(6)
      expect(refused.headers.get('surrogate-control')).toBe('no-store')
      await locker.query('ROLLBACK')
      expect((await slow).status).toBe(200)
    } finally {
      locker.release()
    }
  })
})
