/**
 * Subset snapshots from `@electric-sql/client` itself (#13.1): `fetchSnapshot` and
 * `requestSnapshot` over GET and POST, and the proof that a `changes_only` stream fed by
 * subsets stays exact while writers commit: every row ends equal to PostgreSQL, and a row's
 * version never goes backwards (a change the subset already held, applied again, would).
 */
import { ShapeStream, isChangeMessage, isControlMessage, type Message, type Row } from '@electric-sql/client'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTestSluice, type TestSluice } from './support/sluice.js'
import { waitFor } from './support/wait.js'

let sluice: TestSluice

beforeAll(async () => {
  sluice = await startTestSluice()
  await sluice.db.pool.query(`CREATE TABLE notes (id int PRIMARY KEY, owner text NOT NULL, rank int NOT NULL, n int NOT NULL DEFAULT 0)`)
  await sluice.db.pool.query(`INSERT INTO notes SELECT i, CASE WHEN i % 3 = 0 THEN 'carol' ELSE 'dave' END, i % 10, 0 FROM generate_series(1, 300) i`)
})

afterAll(async () => {
  await sluice?.close()
})

type Note = { id: number; owner: string; rank: number; n: number }

async function pgNotes(where = 'true', tail = 'ORDER BY id'): Promise<Note[]> {
  return (await sluice.db.pool.query<Note>(`SELECT id, owner, rank, n FROM notes WHERE ${where} ${tail}`)).rows
}

function stream(options: { log?: 'changes_only'; subsetMethod?: 'GET' | 'POST' } = {}): ShapeStream<Note & Row> {
  return new ShapeStream<Note & Row>({
    url: sluice.shapeUrl(),
    params: { table: 'notes', replica: 'full' },
    ...(options.log ? { log: options.log } : {}),
    ...(options.subsetMethod ? { subsetMethod: options.subsetMethod } : {}),
  })
}

describe('subset snapshots from @electric-sql/client', () => {
  for (const method of ['GET', 'POST'] as const) {
    it(`fetchSnapshot (${method}) returns PostgreSQL's rows, parsed, with the snapshot's metadata`, async () => {
      const s = stream()
      const { metadata, data } = await s.fetchSnapshot({ where: 'owner = $1', params: { '1': 'carol' }, orderBy: 'rank DESC, id', limit: 7, offset: 3, method })
      expect(data.map((m) => m.value)).toEqual(await pgNotes(`owner = 'carol'`, 'ORDER BY rank DESC, id LIMIT 7 OFFSET 3'))
      expect(BigInt(metadata.database_lsn)).toBeGreaterThan(0n)
      expect(data.every((m) => m.headers['snapshot_mark'] === metadata.snapshot_mark)).toBe(true)
      s.unsubscribeAll()
    })

    it(`requestSnapshot (${method}) injects the rows into a changes_only stream, then live changes follow`, async () => {
      const s = stream({ log: 'changes_only', subsetMethod: method })
      const rows = new Map<number, Note>()
      s.subscribe((messages) => apply(rows, messages))
      await s.requestSnapshot({ where: 'rank = $1', params: { '1': '4' }, orderBy: 'id', limit: 5 })
      expect([...rows.values()].sort(byId)).toEqual(await pgNotes('rank = 4', 'ORDER BY id LIMIT 5'))
      const id = method === 'GET' ? 1001 : 1002
      await sluice.db.pool.query(`INSERT INTO notes VALUES ($1, 'erin', 4, 0)`, [id])
      await waitFor(() => expect(rows.get(id)).toEqual({ id, owner: 'erin', rank: 4, n: 0 }))
      s.unsubscribeAll()
    })
  }

  it('stays exact while writers commit during subset loads: nothing lost, nothing doubled', async () => {
    const s = stream({ log: 'changes_only' })
    const rows = new Map<number, Note>()
    const backwards: string[] = []
    let upToDate: () => void = () => {}
    s.subscribe(
      (messages) => {
        apply(rows, messages, backwards)
        if (messages.some((m) => isControlMessage(m) && m.headers.control === 'up-to-date')) upToDate()
      },
      (error) => backwards.push(`stream failed: ${String(error)}`),
    )
    // As an app does between loads: the stream catches up before the next subset pauses it
    // (back-to-back subsets would starve it, and the client resets a stream stuck at one offset).
    const caughtUp = () => new Promise<void>((resolve) => (upToDate = resolve))

    const stopAt = Date.now() + 4_000
    const writers = [0, 1, 2].map((w) => write(w, stopAt))
    let rounds = 0
    while (Date.now() < stopAt) {
      // Ranges of the seed ids, then one open range for every id the writers insert.
      for (let from = 0; from <= 2_000 && Date.now() < stopAt + 1_000; from += 250) {
        const next = caughtUp()
        const where = from < 2_000 ? { where: 'id > $1 AND id <= $2', params: { '1': String(from), '2': String(from + 250) } } : { where: 'id > $1', params: { '1': String(from) } }
        await s.requestSnapshot({ ...where, method: rounds % 2 ? 'POST' : 'GET' })
        await next
      }
      rounds++
    }
    const transactions = (await Promise.all(writers)).reduce((a, b) => a + b, 0)
    expect(transactions).toBeGreaterThan(20)
    expect(rounds).toBeGreaterThan(0)
    const expected = await pgNotes()
    await waitFor(() => expect([...rows.values()].sort(byId)).toEqual(expected), 30_000)
    expect(backwards).toEqual([])
    s.unsubscribeAll()
  })
})

/** Writer `w` updates (bumping `n`), inserts (ids never reused) and deletes until `stopAt`. */
async function write(w: number, stopAt: number): Promise<number> {
  const client = await sluice.db.pool.connect()
  let nextId = 2_001 + w * 100_000
  let transactions = 0
  try {
    while (Date.now() < stopAt) {
      await client.query('BEGIN')
      for (let i = 0; i < 3; i++) {
        const pick = Math.random()
        if (pick < 0.6) await client.query(`UPDATE notes SET n = n + 1, rank = (rank + 1) % 10 WHERE id = (SELECT id FROM notes ORDER BY random() LIMIT 1 FOR UPDATE SKIP LOCKED)`)
        else if (pick < 0.8) await client.query(`INSERT INTO notes VALUES ($1, 'w', 0, 0)`, [nextId++])
        else await client.query(`DELETE FROM notes WHERE id = (SELECT id FROM notes ORDER BY random() LIMIT 1 FOR UPDATE SKIP LOCKED)`)
      }
      await client.query('COMMIT')
      transactions++
    }
  } finally {
    client.release()
  }
  return transactions
}

/** Applies messages as a client materializes them; `backwards` collects any row whose `n` decreased. */
function apply(rows: Map<number, Note>, messages: Message<Note & Row>[], backwards?: string[]): void {
  for (const message of messages) {
    if (!isChangeMessage(message)) continue
    const id = Number(message.value.id)
    if (message.headers.operation === 'delete') {
      rows.delete(id)
      continue
    }
    const before = rows.get(id)
    const after = { ...before, ...message.value } as Note
    if (before && after.n < before.n) backwards?.push(`${id}: n ${before.n} -> ${after.n} (${message.headers.operation})`)
    rows.set(id, { id: after.id, owner: after.owner, rank: after.rank, n: after.n })
  }
}

function byId(a: Note, b: Note): number {
  return a.id - b.id
}
