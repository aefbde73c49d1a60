/**
 * Fairness inside a shared snapshot (`shapes/snapshot-plan.ts`, docs/ARCHITECTURE.md I30): the
 * shapes' rows are counted with the snapshot and read in packs, smallest first, and each shape
 * is answered once its pack is read. A shape of 30,000 rows, batched with twenty of three rows
 * and stuck in its storage writes, does not hold them: they are all answered while it waits.
 */
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createLogger } from '../src/log.js'
import { loadTableInfo, type TableInfo } from '../src/pg/introspect.js'
import { PACK_ROWS } from '../src/shapes/snapshot-plan.js'
import { takeSnapshot, type SnapshotMember, type SnapshotOutcome } from '../src/shapes/snapshot.js'
import { createTestDatabase, type TestDatabase } from './support/database.js'
import { waitFor } from './support/wait.js'

const LARGE = 30_000
const SMALL = 20

let db: TestDatabase
let pool: pg.Pool

beforeAll(async () => {
  db = await createTestDatabase()
  await db.pool.query(`CREATE TABLE orders (id int PRIMARY KEY, user_id int NOT NULL, note text)`)
  await db.pool.query(`CREATE INDEX ON orders (user_id)`)
  await db.pool.query(`INSERT INTO orders SELECT g, 0, repeat('x', 40) FROM generate_series(1, ${LARGE}) g`)
  await db.pool.query(`INSERT INTO orders SELECT ${LARGE} + 1 + g, 1 + g % ${SMALL}, 'small' FROM generate_series(0, ${SMALL * 3 - 1}) g`)
  await db.pool.query('ANALYZE orders')
  pool = new pg.Pool({ connectionString: db.url, max: 1 })
})

afterAll(async () => {
  await pool?.end()
  await db?.drop()
})

function member(table: TableInfo, user: number, onRows: (rows: readonly Buffer[]) => Promise<void>): SnapshotMember {
  return {
    table,
    whereSql: `"user_id" = ${user}`,
    // Half of the small shapes through the shared `= ANY` branch, half with branches of their own.
    ...(user % 2 === 0 && { equality: { column: 'user_id', arrayType: 'int8' as const, values: [String(user)] } }),
    rows: true,
    sink: { missedCommits: () => [], onRetake: () => undefined, onSnapshotInfo: () => undefined, onRows },
  }
}

describe('a shared snapshot with one large shape', () => {
  it('answers the small shapes while the large one is still being read', async () => {
    expect(LARGE).toBeGreaterThan(PACK_ROWS)
    const table = (await loadTableInfo(db.pool, { schema: 'public', name: 'orders' }))!
    let release: () => void = () => undefined
    const gate = new Promise<void>((resolve) => (release = resolve))
    const rows = new Map<number, number>()
    const collect = (user: number) => async (batch: readonly Buffer[]) => {
      rows.set(user, (rows.get(user) ?? 0) + batch.length)
      // The large shape's storage is slow: its rows wait for the gate.
      if (user === 0) await gate
    }
    const users = [0, ...Array.from({ length: SMALL }, (_, i) => i + 1)]
    const done = new Map<number, SnapshotOutcome>()
    const taking = takeSnapshot(
      pool,
      users.map((user) => member(table, user, collect(user))),
      createLogger('silent'),
      (i, outcome) => done.set(users[i]!, outcome),
    )
    try {
      await waitFor(() => expect(done.size).toBe(SMALL), 30_000)
      expect(done.has(0)).toBe(false)
    } finally {
      release()
    }
    const outcomes = await taking
    expect(outcomes.map((o) => ('rows' in o ? o.rows : o.left))).toEqual([LARGE, ...Array(SMALL).fill(3)])
    expect([...done.keys()].sort((a, b) => a - b)).toEqual(users)
    expect(rows.get(0)).toBe(LARGE)
    for (let user = 1; user <= SMALL; user++) expect(rows.get(user), `user ${user}`).toBe(3)
  })
})
