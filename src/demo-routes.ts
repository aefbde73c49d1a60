/**
 * The demo: a todo page at `/` (`public/index.html`, no build step) that syncs the `items` table
 * through a bare browser `EventSource`, and a small write endpoint it posts to. Only mounted
 * with the embedded database or `SLUICE_DEMO=1`: it writes to the database without any
 * permission model, so it is not for production.
 */
import { readFileSync } from 'node:fs'
import { Hono, type Context } from 'hono'
import type pg from 'pg'
import { InvalidRequestError } from './errors.js'
import { HEADERS } from './protocol/constants.js'

const PAGE_PATH = new URL('../public/index.html', import.meta.url)
const MAX_TITLE_CHARS = 200
const ID_TEXT = /^[1-9][0-9]{0,17}$/

/** `authorize` throws when the request lacks the configured secret (if any). */
export function demoRoutes(pool: pg.Pool, authorize: (c: Context) => void): Hono {
  const page = readFileSync(PAGE_PATH, 'utf8')
  const app = new Hono()

  app.get('/', (c) => {
    c.header(HEADERS.cacheControl, 'no-store')
    return c.html(page)
  })

  app.post('/demo/items', async (c) => {
    authorize(c)
    const title = titleOf(await bodyOf(c))
    const { rows } = await pool.query<{ id: string }>('INSERT INTO items (title) VALUES ($1) RETURNING id::text AS id', [title])
    return c.json({ id: rows[0]!.id }, 201)
  })

  app.patch('/demo/items/:id', async (c) => {
    authorize(c)
    const id = idOf(c.req.param('id'))
    const body = await bodyOf(c)
    const sets: string[] = []
    const values: unknown[] = [id]
    if ('title' in body) sets.push(`title = $${values.push(titleOf(body))}`)
    if ('done' in body) {
      if (typeof body['done'] !== 'boolean') throw InvalidRequestError.of('done', 'must be true or false')
      sets.push(`done = $${values.push(body['done'])}`)
    }
    if (sets.length === 0) throw InvalidRequestError.of('body', 'nothing to change: give title and/or done')
    const { rowCount } = await pool.query(`UPDATE items SET ${sets.join(', ')} WHERE id = $1`, values)
    return rowCount ? c.body(null, 204) : c.json({ message: 'No such item.' }, 404)
  })

  app.delete('/demo/items/:id', async (c) => {
    authorize(c)
    const { rowCount } = await pool.query('DELETE FROM items WHERE id = $1', [idOf(c.req.param('id'))])
    return rowCount ? c.body(null, 204) : c.json({ message: 'No such item.' }, 404)
  })

  return app
}

async function bodyOf(c: Context): Promise<Record<string, unknown>> {
  const body: unknown = await c.req.json().catch(() => undefined)
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw InvalidRequestError.of('body', 'must be a JSON object')
  return body as Record<string, unknown>
}

function titleOf(body: Record<string, unknown>): string {
  const title = body['title']
  if (typeof title !== 'string' || title.trim() === '' || title.length > MAX_TITLE_CHARS) {
    throw InvalidRequestError.of('title', `must be a non-empty string of at most ${MAX_TITLE_CHARS} characters`)
  }
  return title.trim()
}

function idOf(text: string): string {
  if (!ID_TEXT.test(text)) throw InvalidRequestError.of('id', 'must be a positive whole number')
  return text
}
