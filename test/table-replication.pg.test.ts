import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createLogger } from '../src/log.js'
import { loadTableInfo, type Queryable, type TableInfo } from '../src/pg/introspect.js'
import { REPLICATED_MEMORY_MS, TableReplication } from '../src/pg/table-replication.js'
import { ManualClock } from './support/clock.js'
import { createTestDatabase, type TestDatabase } from './support/database.js'

let db: TestDatabase
const publication = 'replication_memory'

beforeAll(async () => {
  db = await createTestDatabase()
  await db.pool.query('CREATE TABLE items (id int PRIMARY KEY, title text)')
})
afterAll(() => db.drop())

/** The test database's pool, counting the queries run through it. */
function countingDb(): { db: Queryable; queries: () => number } {
  let queries = 0
  return { db: { query: (text, values) => (queries++, db.pool.query(text, values)) }, queries: () => queries }
}

async function items(): Promise<TableInfo> {
  return (await loadTableInfo(db.pool, { schema: 'public', name: 'items' }))!
}

async function published(): Promise<boolean> {
  const { rows } = await db.pool.query(`SELECT 1 FROM pg_publication_tables WHERE pubname = $1 AND tablename = 'items'`, [publication])
  return rows.length === 1
}

describe('TableReplication', () => {
  it('checks a table once for shapes created at once, and not again within a second', async () => {
    const clock = new ManualClock()
    const counting = countingDb()
    const replication = new TableReplication({ db: counting.db, publication, log: createLogger('silent'), now: clock.now })
    const table = await items()
    await Promise.all(Array.from({ length: 50 }, () => replication.ensure(table)))
    expect(await published()).toBe(true)
    const joined = counting.queries()

    // The next shapes of the second ask nothing: 10,000 new shapes asked 500 times.
    clock.advance(REPLICATED_MEMORY_MS - 1)
    await Promise.all(Array.from({ length: 50 }, () => replication.ensure(table)))
    expect(counting.queries()).toBe(joined)

    // Past it, one check, and the table is found in the publication as it is.
    clock.advance(2)
    await Promise.all(Array.from({ length: 50 }, () => replication.ensure(table)))
    expect(counting.queries()).toBe(joined + 1)
  })

  it('adds a table taken out of the publication again once the second is over', async () => {
    const clock = new ManualClock()
    const replication = new TableReplication({ db: db.pool, publication, log: createLogger('silent'), now: clock.now })
    const table = await items()
    await replication.ensure(table)
    await db.pool.query(`ALTER PUBLICATION ${publication} DROP TABLE items`)
    clock.advance(REPLICATED_MEMORY_MS + 1)
    await replication.ensure(table)
    expect(await published()).toBe(true)
  })
})
