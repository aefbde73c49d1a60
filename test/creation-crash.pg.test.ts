/**
 * A crash (SIGKILL) while many shapes are being created leaves no half shape
 * (docs/ARCHITECTURE.md I8, I30). New shapes' records, snapshot rows and snapshot ends share
 * storage transactions, and a handle is given out only once its record is on disk. Three times,
 * 400 new shapes are asked for at once and Sluice is killed at a moment after the first answer;
 * after each restart, every handle answered before reads the same rows again (no 409), and every
 * shape asked for, answered or not, ends equal to PostgreSQL.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ChildSluice } from './support/child-sluice.js'
import { createTestDatabase, type TestDatabase } from './support/database.js'
import { Follower } from './support/follower.js'
import { waitFor } from './support/wait.js'

const USERS = 400
/** How long after the first answer the kill comes, by round: shapes are then at every stage of creation. */
const ROUNDS = [20, 90, 200]

let db: TestDatabase
let dataDir: string
let sluice: ChildSluice
const slot = `creation_crash_${process.pid}`

beforeAll(async () => {
  db = await createTestDatabase()
  await db.pool.query(`CREATE TABLE orders (id int PRIMARY KEY, user_id int NOT NULL, v int NOT NULL)`)
  await db.pool.query(`CREATE INDEX ON orders (user_id)`)
  await db.pool.query(`INSERT INTO orders SELECT g, g % ${USERS * ROUNDS.length}, g FROM generate_series(1, ${USERS * ROUNDS.length * 3}) g`)
  dataDir = await mkdtemp(join(tmpdir(), 'sluice-creation-crash-'))
  sluice = new ChildSluice({ DATABASE_URL: db.url, SLUICE_DATA_DIR: dataDir, SLUICE_REPLICATION_SLOT: slot, SLUICE_PUBLICATION: slot })
}, 120_000)

afterAll(async () => {
  await sluice?.kill()
  await db?.drop()
  if (dataDir) await rm(dataDir, { recursive: true, force: true })
})

const follower = (user: number) => new Follower(() => sluice.shapeUrl, { table: 'orders', where: `user_id = ${user}` })

const sortedRows = (f: Follower) => [...f.rows.values()].sort((a, b) => Number(a['id']) - Number(b['id']))

async function postgresRows(user: number): Promise<Record<string, string>[]> {
  const { rows } = await db.pool.query<Record<string, string>>(`SELECT id::text, user_id::text, v::text FROM orders WHERE user_id = $1 ORDER BY orders.id`, [user])
  return rows
}

describe('a crash while shapes are created', () => {
  it('leaves every shape whole: answered handles keep their rows, the rest are served equal to PostgreSQL', { timeout: 300_000 }, async () => {
    await sluice.start()
    // The table joins the publication first.
    await follower(-1).catchUp()
    for (const [round, killAfterMs] of ROUNDS.entries()) {
      const users = Array.from({ length: USERS }, (_, i) => round * USERS + i)
      const answered = new Map<number, { handle: string; rows: Record<string, string | null>[] }>()
      const asking = users.map(async (user) => {
        const f = follower(user)
        try {
          await f.catchUp()
          answered.set(user, { handle: f.handle!, rows: sortedRows(f) })
        } catch {
          // Killed before its answer.
        }
      })
      await waitFor(() => expect(answered.size).toBeGreaterThan(0), 60_000)
      await new Promise((resolve) => setTimeout(resolve, killAfterMs))
      await sluice.kill()
      await Promise.all(asking)
      expect(answered.size, 'some shapes were still being created at the kill').toBeLessThan(USERS)
      await sluice.start()

      for (const [user, before] of answered) {
        const again = follower(user)
        again.handle = before.handle
        await again.catchUp()
        expect(again.refetches, `user_id = ${user}: its handle was given out, so it must survive`).toBe(0)
        expect(sortedRows(again)).toEqual(before.rows)
      }
      for (const user of users) {
        const f = follower(user)
        await f.catchUp()
        expect(sortedRows(f), `user_id = ${user}`).toEqual(await postgresRows(user))
      }
    }
  })
})
