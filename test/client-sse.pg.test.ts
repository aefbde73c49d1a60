/**
 * `@electric-sql/client` with `liveSse: true`: the same end-to-end checks as long-poll, and no
 * fall back to long-polling (which it does after three SSE connections in a row that close
 * within a second) during a burst of 1,000 transactions.
 */
import { ShapeStream, type Row } from '@electric-sql/client'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { shapeOf } from './support/electric.js'
import { startTestSluice, waitForReplication, type TestSluice } from './support/sluice.js'
import { waitFor } from './support/wait.js'

let sluice: TestSluice

beforeAll(async () => {
  sluice = await startTestSluice()
  await sluice.db.pool.query(`CREATE TABLE items (id int PRIMARY KEY, title text, done bool NOT NULL DEFAULT false)`)
  await sluice.db.pool.query(`INSERT INTO items VALUES (1, 'one', false), (2, 'two', true)`)
})

afterAll(async () => {
  await sluice?.close()
})

/** A fetch that records every URL the client asks for. */
function recordingFetch(urls: URL[]): typeof fetch {
  return (input, init) => {
    urls.push(new URL(input instanceof Request ? input.url : String(input)))
    return fetch(input, init)
  }
}

const isSse = (url: URL) => url.searchParams.get('live_sse') === 'true'
const isLongPoll = (url: URL) => url.searchParams.get('live') === 'true' && !isSse(url)

async function tableRows(): Promise<Row[]> {
  const { rows } = await sluice.db.pool.query<Row>(`SELECT id, title, done FROM items ORDER BY id`)
  return rows
}

function sortById(rows: Row[]): Row[] {
  return [...rows].sort((a, b) => Number(a['id']) - Number(b['id']))
}

describe('@electric-sql/client with liveSse', () => {
  it('syncs a table, then inserts, updates and deletes over SSE', async () => {
    const urls: URL[] = []
    const stream = new ShapeStream({ url: sluice.shapeUrl(), params: { table: 'items' }, liveSse: true, fetchClient: recordingFetch(urls) })
    const shape = shapeOf(stream)
    expect(sortById(await shape.rows)).toEqual([
      { id: 1, title: 'one', done: false },
      { id: 2, title: 'two', done: true },
    ])
    await waitFor(() => expect(urls.some(isSse)).toBe(true))

    await sluice.db.pool.query(`INSERT INTO items VALUES (3, 'three', false)`)
    await sluice.db.pool.query(`UPDATE items SET title = 'uno', done = true WHERE id = 1`)
    await sluice.db.pool.query(`DELETE FROM items WHERE id = 2`)
    await waitFor(() =>
      expect(sortById(shape.currentRows)).toEqual([
        { id: 1, title: 'uno', done: true },
        { id: 3, title: 'three', done: false },
      ]),
    )
    expect(urls.filter(isLongPoll)).toEqual([])
    shape.unsubscribeAll()
    stream.unsubscribeAll()
  })

  it('stays on SSE through a burst of 1,000 transactions and ends equal to the table', async () => {
    const warn = vi.spyOn(console, 'warn')
    const urls: URL[] = []
    const stream = new ShapeStream({ url: sluice.shapeUrl(), params: { table: 'items' }, liveSse: true, fetchClient: recordingFetch(urls) })
    const shape = shapeOf(stream)
    try {
      await shape.rows
      await waitFor(() => expect(urls.some(isSse)).toBe(true))
      const firstSse = urls.findIndex(isSse)

      for (let i = 0; i < 1_000; i++) {
        const id = 100 + i
        if (i % 3 === 2) await sluice.db.pool.query(`UPDATE items SET done = NOT done, title = $2 WHERE id = $1`, [id - 1, `t${i}`])
        else await sluice.db.pool.query(`INSERT INTO items VALUES ($1, $2, false)`, [id, `burst ${i}`])
        if (i % 10 === 9) await sluice.db.pool.query(`DELETE FROM items WHERE id = $1`, [id - 5])
      }
      await waitForReplication(sluice)
      const expected = await tableRows()
      await waitFor(() => expect(sortById(shape.currentRows)).toEqual(expected), 30_000)

      const fallbackWarnings = warn.mock.calls.filter((args) => String(args[0]).includes('Falling back to long polling'))
      expect(fallbackWarnings).toEqual([])
      const live = urls.slice(firstSse)
      expect(live.filter(isLongPoll)).toEqual([])
      // Each SSE connection lasts SLUICE_SSE_TIMEOUT_MS (60 s): the burst fits in one or two.
      expect(live.filter(isSse).length).toBeLessThanOrEqual(3)
    } finally {
      warn.mockRestore()
      shape.unsubscribeAll()
      stream.unsubscribeAll()
    }
  })
})
