/**
 * Shared snapshots read equality shapes through one `col = ANY(…)` branch per column and column
 * list, and hand each row to the shapes that asked for its value (`shapes/snapshot-plan.ts`,
 * docs/ARCHITECTURE.md I30). Shapes created at once on int8, text and uuid columns, with values
 * that overlap, repeat, are NULL, cannot match the column's type, or contain commas, and shapes
 * with the same value but different `columns`, each end with exactly PostgreSQL's rows.
 */
import type pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Follower } from './support/follower.js'
import { startTestSluice, type TestSluice } from './support/sluice.js'
import { waitFor } from './support/wait.js'

let sluice: TestSluice

const UUIDS = ['a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '00000000-0000-0000-0000-000000000001', 'ffffffff-ffff-ffff-ffff-ffffffffffff']
const NAMES = ['a,b', 'x', '', 'Zürich ☃', "it's", null]

beforeAll(async () => {
  sluice = await startTestSluice({ maxConcurrentSnapshots: 2, snapshotQueueLength: 1_000 })
  await sluice.db.pool.query(`CREATE TABLE people (id int8 PRIMARY KEY, team int8, name text, ext uuid, note text)`)
  await sluice.db.pool.query(`CREATE INDEX ON people (team)`)
  const values = Array.from({ length: 120 }, (_, i) => {
    const team = i % 7 === 0 ? 'NULL' : String(i % 5)
    const name = NAMES[i % NAMES.length]
    const ext = i % 4 === 3 ? 'NULL' : `'${UUIDS[i % 3]}'`
    return `(${i + 1}, ${team}, ${name === null || name === undefined ? 'NULL' : `'${name.replaceAll("'", "''")}'`}, ${ext}, ${i % 2 === 0 ? `'n${i}'` : 'NULL'})`
  })
  await sluice.db.pool.query(`INSERT INTO people VALUES ${values.join(', ')}`)
  // A row whose team is past int4: an int8 column's values compare in int8.
  await sluice.db.pool.query(`INSERT INTO people VALUES (1000, 9000000000, 'big', NULL, NULL)`)
})

afterAll(async () => {
  await sluice?.close()
})

interface Case {
  readonly where: string
  readonly columns?: readonly string[]
}

const CASES: readonly Case[] = [
  { where: 'team = 1' },
  { where: 'team = 1', columns: ['id', 'team'] },
  { where: 'team = 1', columns: ['id', 'name'] },
  { where: 'team IN (1, 2, 2)' },
  { where: 'team IN (3, NULL)' },
  { where: 'team = 1.5' },
  { where: 'team = 1.0' },
  { where: 'team = 9000000000' },
  { where: 'team IN (99999999999999999999, 4)' },
  { where: 'team = 2 AND note IS NOT NULL' },
  { where: `name = 'a,b'` },
  { where: `name IN ('x', 'a,b', 'x')` },
  { where: `name = ''` },
  { where: `name = 'Zürich ☃'`, columns: ['id', 'ext'] },
  { where: `name = 'it''s'` },
  { where: `ext = '${UUIDS[0]!.toUpperCase()}'` },
  { where: `ext IN ('${UUIDS[1]}', '${UUIDS[2]}', NULL)` },
  { where: `ext = '${UUIDS[1]}'`, columns: ['id', 'ext', 'note'] },
]

async function metric(name: string): Promise<number> {
  const text = await (await fetch(`${sluice.server.url}/metrics`)).text()
  return Number(new RegExp(`^${name} (\\d+)$`, 'm').exec(text)?.[1] ?? 0)
}

/** Every key the shape's log holds, in order, read from the start (each row once: no key twice). */
async function loggedKeys(f: Follower): Promise<string[]> {
  const keys: string[] = []
  for (let offset = '-1'; ; ) {
    const url = new URL(sluice.shapeUrl())
    for (const [k, v] of Object.entries({ ...f.params, offset, handle: f.handle! })) url.searchParams.set(k, v)
    const response = await fetch(url)
    const messages = (await response.json()) as { key?: string; headers: { control?: string } }[]
    for (const message of messages) if (message.key !== undefined) keys.push(message.key)
    if (messages.some((message) => message.headers.control === 'up-to-date')) return keys
    offset = response.headers.get('electric-offset')!
  }
}

const follower = ({ where, columns }: Case) => new Follower(() => sluice.shapeUrl(), { table: 'people', where, ...(columns ? { columns: columns.join(',') } : {}) })

describe('equality shapes in a shared snapshot', () => {
  it('each get exactly their rows, whatever their values and columns', async () => {
    // The table joins the publication first, so the locker below holds back only snapshots.
    await follower({ where: 'id = -1' }).catchUp()
    const locker: pg.PoolClient = await sluice.db.pool.connect()
    let followers: Follower[]
    try {
      const queriesBefore = await metric('sluice_snapshot_queries_total')
      await locker.query('BEGIN')
      await locker.query('LOCK TABLE people IN ACCESS EXCLUSIVE MODE')
      followers = CASES.map(follower)
      const answered = Promise.all(followers.map((f) => f.catchUp()))
      // Two snapshots hold both connections, blocked on the lock; the rest share the next one.
      await waitFor(async () => expect(await metric('sluice_snapshots_waiting')).toBe(CASES.length - 2), 60_000)
      await locker.query('COMMIT')
      await answered
      // The two that were blocked, then all the others in one.
      expect((await metric('sluice_snapshot_queries_total')) - queriesBefore).toBe(3)
    } finally {
      await locker.query('ROLLBACK').catch(() => undefined)
      locker.release()
    }
    for (const [i, { where, columns }] of CASES.entries()) {
      const selected = columns ?? ['id', 'team', 'name', 'ext', 'note']
      const { rows } = await sluice.db.pool.query<Record<string, string | null>>(`SELECT ${selected.map((c) => `${c}::text`).join(', ')} FROM people WHERE ${where} ORDER BY people.id`)
      const got = [...followers[i]!.rows.values()].sort((a, b) => Number(a['id']) - Number(b['id']))
      expect(got, where).toEqual(rows)
      expect(await loggedKeys(followers[i]!), where).toHaveLength(rows.length)
    }
  })
})
