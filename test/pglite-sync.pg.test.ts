/**
 * PGlite sync (`@electric-sql/pglite-sync`, `syncShapesToTables`) over two tables, which applies a
 * transaction locally only once every shape's `global_last_seen_lsn` has reached its LSN. Sluice
 * once sent a per-shape LSN, so a write to one table never arrived while the other stayed idle.
 * Here a write to either table alone arrives, and a transaction that writes both appears whole:
 * the local database is sampled all along and must never show half of it.
 */
import { PGlite } from '@electric-sql/pglite'
import { electricSync } from '@electric-sql/pglite-sync'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTestSluice, type TestSluice } from './support/sluice.js'
import { waitFor } from './support/wait.js'

let sluice: TestSluice
let local: Awaited<ReturnType<typeof openLocal>>

const SCHEMA = `
  CREATE TABLE authors (id int PRIMARY KEY, name text NOT NULL);
  CREATE TABLE books (id int PRIMARY KEY, author_id int NOT NULL, title text NOT NULL);`

function openLocal() {
  return PGlite.create({ extensions: { sync: electricSync() } })
}

beforeAll(async () => {
  sluice = await startTestSluice()
  await sluice.db.pool.query(SCHEMA)
  await sluice.db.pool.query(`INSERT INTO authors VALUES (1, 'Le Guin'), (2, 'Lem')`)
  await sluice.db.pool.query(`INSERT INTO books VALUES (1, 1, 'The Dispossessed'), (2, 2, 'Solaris')`)
  local = await openLocal()
  await local.exec(SCHEMA)
})

afterAll(async () => {
  await local?.close()
  await sluice?.close()
})

type Tables = { authors: string[]; books: string[] }

async function serverTables(): Promise<Tables> {
  const authors = await sluice.db.pool.query<{ row: string }>(`SELECT id || ':' || name AS row FROM authors ORDER BY id`)
  const books = await sluice.db.pool.query<{ row: string }>(`SELECT id || ':' || author_id || ':' || title AS row FROM books ORDER BY id`)
  return { authors: authors.rows.map((r) => r.row), books: books.rows.map((r) => r.row) }
}

async function localTables(): Promise<Tables> {
  const authors = await local.query<{ row: string }>(`SELECT id || ':' || name AS row FROM authors ORDER BY id`)
  const books = await local.query<{ row: string }>(`SELECT id || ':' || author_id || ':' || title AS row FROM books ORDER BY id`)
  return { authors: authors.rows.map((r) => r.row), books: books.rows.map((r) => r.row) }
}

describe('PGlite syncShapesToTables over two tables', () => {
  it('applies a write to one table while the other is idle, and a two-table transaction whole', async () => {
    let initialSync = false
    const sync = await local.sync.syncShapesToTables({
      key: null,
      shapes: {
        authors: { shape: { url: sluice.shapeUrl(), params: { table: 'authors' } }, table: 'authors', primaryKey: ['id'] },
        books: { shape: { url: sluice.shapeUrl(), params: { table: 'books' } }, table: 'books', primaryKey: ['id'] },
      },
      onInitialSync: () => {
        initialSync = true
      },
    })
    // One local statement reads both tables in one snapshot; a transaction applied in half
    // would show a book without its author (or the author without the book).
    const halves: string[] = []
    let sampling = true
    const sampler = (async () => {
      while (sampling) {
        const { rows } = await local.query<{ author: number; book: number }>(
          `SELECT (SELECT count(*) FROM authors WHERE id = 3)::int AS author, (SELECT count(*) FROM books WHERE id = 3)::int AS book`,
        )
        if (rows[0]!.author !== rows[0]!.book) halves.push(JSON.stringify(rows[0]))
        await new Promise((resolve) => setImmediate(resolve))
      }
    })()
    try {
      await waitFor(() => expect(initialSync).toBe(true))
      expect(await localTables()).toEqual(await serverTables())

      // `books` is idle while `authors` changes, then the other way round.
      await sluice.db.pool.query(`UPDATE authors SET name = 'Ursula K. Le Guin' WHERE id = 1`)
      await waitFor(async () => expect(await localTables()).toEqual(await serverTables()))
      await sluice.db.pool.query(`INSERT INTO books VALUES (4, 2, 'The Cyberiad')`)
      await waitFor(async () => expect(await localTables()).toEqual(await serverTables()))

      const writer = await sluice.db.pool.connect()
      try {
        await writer.query('BEGIN')
        await writer.query(`INSERT INTO authors VALUES (3, 'Butler')`)
        await writer.query(`INSERT INTO books VALUES (3, 3, 'Kindred')`)
        await writer.query('COMMIT')
      } finally {
        writer.release()
      }
      await waitFor(async () => expect(await localTables()).toEqual(await serverTables()))

      // And once more in the other order, then a delete of both.
      await sluice.db.pool.query(`UPDATE authors SET name = 'Octavia E. Butler' WHERE id = 3`)
      await waitFor(async () => expect(await localTables()).toEqual(await serverTables()))
      await sluice.db.pool.query(`WITH b AS (DELETE FROM books WHERE id = 3) DELETE FROM authors WHERE id = 3`)
      await waitFor(async () => expect(await localTables()).toEqual(await serverTables()))
    } finally {
      sampling = false
      await sampler
      sync.unsubscribe()
    }
    expect(halves).toEqual([])
  })
})
