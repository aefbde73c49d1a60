/**
 * Subset snapshots over HTTP (#13.1): `subset__*` on GET and a JSON body on POST, the rows of
 * the shape that also match, ordered and paged as PostgreSQL orders them, the body and headers
 * Electric sends, and a 400 naming the parameter (with a position) for everything else.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTestSluice, type TestSluice } from './support/sluice.js'
import { waitFor } from './support/wait.js'

let sluice: TestSluice

beforeAll(async () => {
  sluice = await startTestSluice()
  await sluice.db.pool.query(`CREATE TABLE items (id int PRIMARY KEY, owner text NOT NULL, rank int, title text, secret text)`)
  await sluice.db.pool.query(
    `INSERT INTO items SELECT i, CASE WHEN i % 2 = 0 THEN 'alice' ELSE 'bob' END, CASE WHEN i % 5 = 0 THEN NULL ELSE i % 7 END, 't' || i, 's' || i FROM generate_series(1, 40) i`,
  )
})

afterAll(async () => {
  await sluice?.close()
})

interface SubsetBody {
  metadata: { xmin: string; xmax: string; xip_list: string[]; database_lsn: string; snapshot_mark: number }
  data: { key: string; value: Record<string, string | null>; headers: Record<string, unknown> }[]
}

function url(query: Record<string, string>): string {
  const u = new URL(sluice.shapeUrl())
  for (const [name, value] of Object.entries(query)) u.searchParams.set(name, value)
  return u.toString()
}

async function pgIds(sql: string): Promise<number[]> {
  return (await sluice.db.pool.query<{ id: number }>(sql)).rows.map((r) => r.id)
}

describe('subset snapshots', () => {
  it('GET: the shape rows matching the subset, ordered and paged like PostgreSQL, with Electric headers', async () => {
    const response = await fetch(
      url({
        table: 'items',
        offset: '-1',
        log: 'changes_only',
        where: `owner = 'alice'`,
        subset__where: 'id > $1',
        subset__params: JSON.stringify({ '1': 4 }),
        subset__order_by: 'rank DESC NULLS LAST, id',
        subset__limit: '5',
        subset__offset: '2',
      }),
    )
    expect(response.status).toBe(200)
    expect(response.headers.get('electric-snapshot')).toBe('true')
    expect(response.headers.get('cache-control')).toBe('no-cache')
    expect(response.headers.get('electric-handle')).toBeTruthy()
    expect(response.headers.get('electric-offset')).toMatch(/^\d+_(\d+|inf)$/)
    expect(JSON.parse(response.headers.get('electric-schema')!)).toHaveProperty('id')
    expect(response.headers.get('etag')).toBeNull()
    const body = (await response.json()) as SubsetBody
    expect(Object.keys(body)).toEqual(['metadata', 'data'])
    expect(body.metadata.xmin).toMatch(/^\d+$/)
    expect(body.metadata.xmax).toMatch(/^\d+$/)
    expect(body.metadata.database_lsn).toMatch(/^\d+$/)
    expect(Number.isInteger(body.metadata.snapshot_mark)).toBe(true)
    const expected = await pgIds(`SELECT id FROM items WHERE owner = 'alice' AND id > 4 ORDER BY rank DESC NULLS LAST, id LIMIT 5 OFFSET 2`)
    expect(body.data.map((m) => Number(m.value['id']))).toEqual(expected)
    expect(body.data[0]).toEqual({
      key: `"public"."items"/"${expected[0]}"`,
      value: expect.objectContaining({ id: String(expected[0]), owner: 'alice' }),
      headers: { operation: 'insert', relation: ['public', 'items'], snapshot_mark: body.metadata.snapshot_mark },
    })
  })

  it('POST: the subset in a JSON body (flat or under "subset", *_expr ignored), on a full-log shape too', async () => {
    const expected = await pgIds(`SELECT id FROM items WHERE title LIKE 't1%' ORDER BY id DESC LIMIT 3`)
    for (const log of ['full', 'changes_only']) {
      for (const body of [
        { where: 'title LIKE $1', params: { '1': 't1%' }, order_by: 'id DESC', limit: 3, where_expr: { type: 'nonsense' } },
        { subset: { where: 'title LIKE $1', params: ['t1%'], order_by: 'id DESC', limit: 3 } },
      ]) {
        const response = await fetch(url({ table: 'items', offset: '-1', log }), {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(body),
        })
        expect(response.status).toBe(200)
        const parsed = (await response.json()) as SubsetBody
        expect(parsed.data.map((m) => Number(m.value['id']))).toEqual(expected)
      }
    }
  })

  it('takes subset__params[n] like params[n], and a subset without where', async () => {
    const response = await fetch(url({ table: 'items', offset: '-1', 'subset__params[1]': 'bob', subset__where: 'owner = $1', subset__order_by: 'id', subset__limit: '2' }))
    expect(((await response.json()) as SubsetBody).data.map((m) => Number(m.value['id']))).toEqual([1, 3])
    const all = await fetch(url({ table: 'items', offset: '-1', subset__order_by: 'id', subset__limit: '1' }))
    expect(((await all.json()) as SubsetBody).data.map((m) => Number(m.value['id']))).toEqual([1])
  })

  it('answers the CORS preflight for POST with a JSON body', async () => {
    const response = await fetch(sluice.shapeUrl(), {
      method: 'OPTIONS',
      headers: { origin: 'https://app.example', 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type' },
    })
    expect(response.status).toBe(204)
    expect(response.headers.get('access-control-allow-methods')).toContain('POST')
    expect(response.headers.get('access-control-allow-headers')).toContain('content-type')
    const exposed = (await fetch(url({ table: 'items', offset: '-1', subset__where: 'id = 1' }), { headers: { origin: 'https://app.example' } })).headers
    expect(exposed.get('access-control-allow-origin')).toBe('https://app.example')
    expect(exposed.get('access-control-expose-headers')).toContain('electric-snapshot')
  })

  const refusals: [string, Record<string, string>, string, RegExp][] = [
    ['limit without order_by', { subset__limit: '3' }, 'subset__order_by', /required when limit or offset/],
    ['a negative offset', { subset__order_by: 'id', subset__offset: '-1' }, 'subset__offset', /integer of at least 0/],
    ['a zero limit', { subset__order_by: 'id', subset__limit: '0' }, 'subset__limit', /integer of at least 1/],
    ['an expression in order_by', { subset__order_by: 'id, lower(title)' }, 'subset__order_by', /^At location 4: can only order by plain column names/],
    ['USING in order_by', { subset__order_by: 'id USING <' }, 'subset__order_by', /USING is not supported/],
    ['a second clause in order_by', { subset__order_by: 'id LIMIT 5' }, 'subset__order_by', /without LIMIT/],
    ['a comment in order_by', { subset__order_by: 'id -- x' }, 'subset__order_by', /comments are not allowed/],
    ['an unknown order_by column', { subset__order_by: 'id, nope' }, 'subset__order_by', /^At location 4: column "nope" does not exist/],
    ['a syntax error in order_by', { subset__order_by: 'id,,' }, 'subset__order_by', /^At location 22: syntax error at or near ","/],
    ['a subquery in where', { subset__where: 'id IN (SELECT 1)' }, 'subset__where', /a subquery must read exactly one table/],
    ['a function outside the list', { subset__where: 'now() > now()' }, 'subset__where', /now\(\) is not supported/],
    ['a second statement', { subset__where: 'true; DROP TABLE items' }, 'subset__where', /single expression/],
    ['a missing parameter', { subset__where: 'id = $2', subset__params: '{"1":"1"}' }, 'subset__params[2]', /is missing/],
    ['params that are not an object', { subset__where: 'id = $1', subset__params: '[[1]]' }, 'subset__params[1]', /string, a number or a boolean/],
    ['params that are not JSON', { subset__where: 'id = $1', subset__params: '{' }, 'subset__params', /JSON object/],
    ['an unknown where column', { subset__where: 'nope = 1' }, 'subset__where', /"nope" does not exist/],
    ['a data error at run time', { subset__where: '1 / (id - id) = 1' }, 'subset__where', /division by zero/],
    ['SSE', { subset__where: 'true', live: 'true', live_sse: 'true' }, 'live_sse', /SSE does not apply/],
  ]
  for (const [what, query, param, why] of refusals) {
    it(`refuses ${what} with a 400 naming ${param}`, async () => {
      const response = await fetch(url({ table: 'items', offset: '-1', ...query }))
      expect(response.status).toBe(400)
      const body = (await response.json()) as { message: string; errors: Record<string, string[]> }
      expect(body.message).toBe('Invalid request')
      expect(body.errors[param]?.join(' ')).toMatch(why)
    })
  }

  it('refuses HEAD with a subset (its body would never be read)', async () => {
    const response = await fetch(url({ table: 'items', offset: '-1', subset__where: 'true' }), { method: 'HEAD' })
    expect(response.status).toBe(400)
    const after = await fetch(url({ table: 'items', offset: '-1', subset__where: 'true' }))
    expect(after.status).toBe(200)
  })

  it('refuses a body that is not JSON, or too large', async () => {
    const post = (body: string) => fetch(url({ table: 'items', offset: '-1' }), { method: 'POST', headers: { 'content-type': 'application/json' }, body })
    const bad = await post('{where:')
    expect(bad.status).toBe(400)
    expect(((await bad.json()) as { errors: Record<string, string[]> }).errors['subset']?.[0]).toMatch(/must be JSON/)
    const large = await post(JSON.stringify({ where: 'true', params: { '1': 'x'.repeat(3 * 1024 * 1024) } }))
    expect(large.status).toBe(400)
    expect(((await large.json()) as { errors: Record<string, string[]> }).errors['subset']?.[0]).toMatch(/larger than/)
  })

  it('queryable_columns: limits the subset where and order_by, and is the projection when columns is absent', async () => {
    const base = { table: 'items', offset: '-1', queryable_columns: 'id,owner,rank' }
    const ok = await fetch(url({ ...base, subset__where: `owner = 'bob'`, subset__order_by: 'rank, id', subset__limit: '1' }))
    expect(ok.status).toBe(200)
    const row = ((await ok.json()) as SubsetBody).data[0]!
    expect(Object.keys(row.value).sort()).toEqual(['id', 'owner', 'rank'])
    const where = await fetch(url({ ...base, subset__where: `secret = 's1'` }))
    expect(where.status).toBe(400)
    expect(((await where.json()) as { errors: Record<string, string[]> }).errors['subset__where']?.[0]).toMatch(/"secret" does not exist/)
    const order = await fetch(url({ ...base, subset__order_by: 'title' }))
    expect(((await order.json()) as { errors: Record<string, string[]> }).errors['subset__order_by']?.[0]).toMatch(/not one of queryable_columns/)
    const columns = await fetch(url({ ...base, columns: 'id,secret' }))
    expect(((await columns.json()) as { errors: Record<string, string[]> }).errors['columns']?.[0]).toMatch(/among queryable_columns/)
    const noKey = await fetch(url({ table: 'items', offset: '-1', queryable_columns: 'owner' }))
    expect(((await noKey.json()) as { errors: Record<string, string[]> }).errors['columns']?.[0]).toMatch(/primary key/)
  })
})

describe('a subset while its table is dropped and created again', () => {
  it('is a 409 must-refetch, not rows of the new table read with an older snapshot', async () => {
    await sluice.db.pool.query(`CREATE TABLE swapped (id int PRIMARY KEY, v text)`)
    await sluice.db.pool.query(`INSERT INTO swapped SELECT g, 'old' FROM generate_series(1, 5) g`)
    // The shape exists (and the catalog knows the old table) before the swap begins.
    const first = await fetch(url({ table: 'swapped', offset: '-1', log: 'changes_only', subset__where: 'id > 0', subset__order_by: 'id' }))
    expect(first.status).toBe(200)
    await first.arrayBuffer()

    const ddl = await sluice.db.pool.connect()
    try {
      await ddl.query('BEGIN')
      await ddl.query(`DROP TABLE swapped`)
      await ddl.query(`CREATE TABLE swapped (id int PRIMARY KEY, v text)`)
      await ddl.query(`INSERT INTO swapped SELECT g, 'new' FROM generate_series(1, 7) g`)
      const { rows } = await ddl.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')
      const answer = fetch(url({ table: 'swapped', offset: '-1', log: 'changes_only', subset__where: 'id > 0', subset__order_by: 'id' }))
      // The subset's backend waits for the DDL's ACCESS EXCLUSIVE lock.
      await waitFor(async () => {
        const waiting = await sluice.db.pool.query(
          `SELECT 1 FROM pg_locks WHERE locktype = 'relation' AND NOT granted AND pid <> $1 AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`,
          [rows[0]!.pid],
        )
        expect(waiting.rowCount).toBeGreaterThan(0)
      })
      await ddl.query('COMMIT')
      const response = await answer
      expect(response.status).toBe(409)
      expect(await response.json()).toEqual([{ headers: { control: 'must-refetch' } }])
    } finally {
      ddl.release()
    }
  })
})
