/**
 * A new shape's snapshot does not wait for its record's flush to disk, but its handle is given
 * out only after it (docs/ARCHITECTURE.md I2, I8; `shapes/shape-manager.ts` `#create`).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { ShapeLogStore } from '../src/storage/shape-log-store.js'
import { startTestSluice, type TestSluice } from './support/sluice.js'
import { waitFor } from './support/wait.js'

let sluice: TestSluice

beforeAll(async () => {
  sluice = await startTestSluice()
  await sluice.db.pool.query(`CREATE TABLE orders (id int PRIMARY KEY, user_id int NOT NULL)`)
  await sluice.db.pool.query(`INSERT INTO orders SELECT g, g % 10 FROM generate_series(1, 20) g`)
})

afterAll(async () => {
  await sluice?.close()
})

async function snapshotQueries(): Promise<number> {
  const text = await (await fetch(`${sluice.server.url}/metrics`)).text()
  return Number(/^sluice_snapshot_queries_total (\d+)$/m.exec(text)?.[1] ?? 0)
}

describe('a new shape', () => {
  it('is snapshotted while its record is flushed, and answered once it is on disk', async () => {
    const url = (user: number) => `${sluice.shapeUrl()}?table=orders&offset=-1&where=${encodeURIComponent(`user_id = ${user}`)}`
    expect((await fetch(url(0))).status).toBe(200)
    // The store's flush of the next record waits until the test lets it go.
    const store: ShapeLogStore = sluice.server.store
    const register = store.registerShape.bind(store)
    let letGo!: () => void
    const gate = new Promise<void>((resolve) => (letGo = resolve))
    store.registerShape = async (...args) => {
      const { shape, flushed } = await register(...args)
      return { shape, flushed: flushed.then(() => gate) }
    }
    const before = await snapshotQueries()
    let answered = false
    const response = fetch(url(1)).then((r) => ((answered = true), r))
    await waitFor(async () => expect(await snapshotQueries()).toBe(before + 1))
    expect(sluice.server.manager.size).toBe(1)
    expect(answered).toBe(false)
    letGo()
    const answer = await response
    expect(answer.status).toBe(200)
    expect(await answer.json()).toHaveLength(2 + 1)
    expect(sluice.server.manager.byHandle(answer.headers.get('electric-handle') as never)).toBeDefined()
  })
})
