import { ShapeStream, type Row } from '@electric-sql/client'
import { shapeOf } from './support/electric.js'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTestSluice, type TestSluice } from './support/sluice.js'
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

describe('@electric-sql/client against Sluice', () => {
  it('syncs a table, then inserts, updates and deletes', async () => {
    const stream = new ShapeStream({ url: sluice.shapeUrl(), params: { table: 'items' } })
    const shape = shapeOf(stream)
    const rows = await shape.rows
    expect(sortById(rows)).toEqual([
      { id: 1, title: 'one', done: false },
      { id: 2, title: 'two', done: true },
    ])

    await sluice.db.pool.query(`INSERT INTO items VALUES (3, 'three', false)`)
    await sluice.db.pool.query(`UPDATE items SET title = 'uno', done = true WHERE id = 1`)
    await sluice.db.pool.query(`DELETE FROM items WHERE id = 2`)
    await waitFor(() =>
      expect(sortById(shape.currentRows)).toEqual([
        { id: 1, title: 'uno', done: true },
        { id: 3, title: 'three', done: false },
      ]),
    )
    shape.unsubscribeAll()
    stream.unsubscribeAll()
  })
})

function sortById(rows: Row[]): Row[] {
  return [...rows].sort((a, b) => Number(a['id']) - Number(b['id']))
}
