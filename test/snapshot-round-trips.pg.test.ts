/**
 * A snapshot's cost in round trips to PostgreSQL (`shapes/snapshot.ts`): each one waits for a
 * busy server, and shapes are created thousands of times a second, so a shared snapshot takes
 * three of them, however many shapes share it — and still checks the table it locked (I9).
 */
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createLogger } from '../src/log.js'
import { loadTableInfo, type TableInfo } from '../src/pg/introspect.js'
import { takeSnapshot, TableChangedError, type SnapshotMember } from '../src/shapes/snapshot.js'
import type { SnapshotInfo } from '../src/storage/shape-log-store.js'
import { createTestDatabase, type TestDatabase } from './support/database.js'

let db: TestDatabase
let pool: pg.Pool
let sent: string[] = []

beforeAll(async () => {
  db = await createTestDatabase()
  await db.pool.query(`CREATE TABLE orders (id int PRIMARY KEY, user_id int NOT NULL, note text)`)
  await db.pool.query(`INSERT INTO orders SELECT g, g % 10, 'n' || g FROM generate_series(1, 30) g`)
  pool = new pg.Pool({ connectionString: db.url, max: 1 })
  // Every message sent on the snapshot's connection, in order.
  pool.on('connect', (client) => {
    const query = client.query.bind(client) as (...args: unknown[]) => unknown
    ;(client as unknown as { query: (...args: unknown[]) => unknown }).query = (...args: unknown[]) => {
      const first = args[0] as string | { text?: string; constructor: { name: string } }
      sent.push(typeof first === 'string' ? first : (first.text ?? first.constructor.name))
      return query(...args)
    }
  })
})

afterAll(async () => {
  await pool?.end()
  await db?.drop()
})

async function orders(): Promise<TableInfo> {
  return (await loadTableInfo(db.pool, { schema: 'public', name: 'orders' }))!
}

function member(table: TableInfo, user: number, rows: Buffer[]): SnapshotMember {
  return {
    table,
    whereSql: `"user_id" = ${user}`,
    rows: true,
    sink: {
      missedCommits: () => [],
      onRetake: () => undefined,
      onSnapshotInfo: (_info: SnapshotInfo) => undefined,
      onRows: async (batch) => {
        rows.push(...batch)
      },
    },
  }
}

describe('a snapshot', () => {
  it('takes three round trips for ten shapes, each getting its rows', async () => {
    const table = await orders()
    const rows = Array.from({ length: 10 }, (): Buffer[] => [])
    sent = []
    const outcomes = await takeSnapshot(pool, rows.map((into, user) => member(table, user, into)), createLogger('silent'))
    // BEGIN, LOCK and the settings with the table's check and the snapshot in one message; the COPY; COMMIT.
    expect(sent).toHaveLength(3)
    expect(outcomes.map((o) => ('rows' in o ? o.rows : o.left))).toEqual(Array(10).fill(3))
    const users = rows.map((into) => new Set(into.map((row) => (JSON.parse(row.toString()) as { value: { user_id: string } }).value.user_id)))
    expect(users).toEqual(rows.map((_, user) => new Set([String(user)])))
  })

  it('still finds a column that changed type before it', async () => {
    const table = await orders()
    await db.pool.query('ALTER TABLE orders ALTER COLUMN note TYPE varchar(20)')
    await expect(takeSnapshot(pool, [member(table, 1, [])], createLogger('silent'))).rejects.toThrow(TableChangedError)
    await expect(takeSnapshot(pool, [member(table, 1, [])], createLogger('silent'))).rejects.toThrow(/column note of public.orders changed type/)
  })
})
