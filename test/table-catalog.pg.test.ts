import type pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { TableCatalog } from '../src/pg/table-catalog.js'
import { ManualClock } from './support/clock.js'
import { createTestDatabase, type TestDatabase } from './support/database.js'

let db: TestDatabase

beforeAll(async () => {
  db = await createTestDatabase()
  await db.pool.query('CREATE TABLE items (id int PRIMARY KEY, title text)')
})
afterAll(() => db.drop())

/** The test database's pool, counting the queries run through it. */
function countingPool(): { pool: pg.Pool; queries: () => number } {
  let queries = 0
  const pool = { query: (...args: Parameters<pg.Pool['query']>) => (queries++, db.pool.query(...args)) } as unknown as pg.Pool
  return { pool, queries: () => queries }
}

const items = { schema: 'public', name: 'items' }
const serve = { allowKeylessTables: false }

describe('TableCatalog', () => {
  it('loads a table once for a burst of look-ups, also when its entry has just expired', async () => {
    // After a deploy 256 requests for new shapes ask at once; each ran the catalog queries (3 each).
    const clock = new ManualClock()
    const { pool, queries } = countingPool()
    const catalog = new TableCatalog(pool, serve, { now: clock.now })
    const first = await Promise.all(Array.from({ length: 50 }, () => catalog.get(items)))
    const perLoad = queries()
    expect(perLoad).toBeGreaterThan(0)
    expect(new Set(first).size).toBe(1)

    clock.advance(60_000)
    const again = await Promise.all(Array.from({ length: 50 }, () => catalog.find(items)))
    expect(queries()).toBe(2 * perLoad)
    expect(new Set(again).size).toBe(1)
    expect(again[0]!.oid).toBe(first[0]!.oid)
  })

  it('does not cache a load that began before the table was forgotten', async () => {
    const { pool } = countingPool()
    const catalog = new TableCatalog(pool, serve)
    const before = catalog.find(items)
    catalog.forget(items)
    const stale = await before
    await db.pool.query('ALTER TABLE items ADD COLUMN note text')
    const fresh = await catalog.find(items)
    expect(stale!.columns.map((c) => c.name)).toEqual(['id', 'title'])
    expect(fresh!.columns.map((c) => c.name)).toEqual(['id', 'title', 'note'])
  })
})
