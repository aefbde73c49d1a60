/** What the subquery tests compare a client's rows with: the tasks table's answer, as the wire's text. */
import { ShapeStream } from '@electric-sql/client'
import type pg from 'pg'
import { expect } from 'vitest'
import { TaggedRows } from './tagged-rows.js'
import { waitFor } from './wait.js'

/** The tasks `where` selects, in the order and text a tag-aware materializer (`tagged-rows.ts`) prints them. */
export async function tasksAnswer(pool: pg.Pool, where: string): Promise<string> {
  const { rows } = await pool.query<{ v: Record<string, string> }>(
    `SELECT json_build_object('id', id::text, 'project_id', project_id::text, 'owner', owner, 'done', format('%s', done)) AS v
       FROM tasks WHERE ${where} ORDER BY ('"public"."tasks"/"' || id || '"')`,
  )
  return JSON.stringify(rows.map((row) => row.v))
}

/** Keeps the wire's text: the tests compare with PostgreSQL's text output. */
export const TEXT_PARSER = { int4: (v: string) => v, bool: (v: string) => v }

/** A client following a tasks shape through `@electric-sql/client`, its rows kept by their tags. */
export interface TasksClient {
  readonly rows: TaggedRows
  readonly stream: ShapeStream
}

/** One client a `where`, each past its first up-to-date. */
export async function followTasks(shapeUrl: string, wheres: readonly string[]): Promise<TasksClient[]> {
  const clients = wheres.map((where) => {
    const rows = new TaggedRows()
    const stream = new ShapeStream({ url: shapeUrl, params: { table: 'tasks', where }, parser: TEXT_PARSER })
    stream.subscribe((messages) => rows.apply(messages))
    return { rows, stream }
  })
  await waitFor(() => expect(clients.every((c) => c.rows.states.length > 0)).toBe(true), 30_000)
  return clients
}

/**
 * Four writers of 40 transactions each, every one one or two of `statements` (chosen by the
 * transaction's number), concurrently; deadlocks between them are rolled back and the rest go on.
 */
export async function runConcurrentWriters(pool: pg.Pool, statements: readonly ((n: number) => string)[]): Promise<void> {
  await Promise.all(
    Array.from({ length: 4 }, async (_, writer) => {
      const client = await pool.connect()
      try {
        for (let t = 0; t < 40; t++) {
          const n = writer * 1000 + t
          try {
            await client.query('BEGIN')
            await client.query(statements[(n * 7 + writer) % statements.length]!(n))
            if (t % 3 === 0) await client.query(statements[(n * 3 + 1) % statements.length]!(n + 1))
            await client.query('COMMIT')
          } catch (error) {
            await client.query('ROLLBACK')
            // Two writers' row locks in opposite orders: PostgreSQL ends one; the rest go on.
            if ((error as { code?: string }).code !== '40P01') throw error
          }
        }
      } finally {
        client.release()
      }
    }),
  )
}
