/**
 * Every column type of the core issue, through `@electric-sql/client`: the schema header must
 * make its parser produce the right JS values, for snapshot rows and replicated rows alike.
 */
import { ShapeStream, type Row } from '@electric-sql/client'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { shapeOf } from './support/electric.js'
import { startTestSluice, type TestSluice } from './support/sluice.js'
import { waitFor } from './support/wait.js'

let sluice: TestSluice

const COLUMNS = `
  i2 int2, i4 int4, i8 int8, num numeric(12,3), f4 float4, f8 float8, f8_inf float8, f8_ninf float8, f8_nan float8,
  b bool, t text, vc varchar(10), c char(3), u uuid, j json, jb jsonb,
  d date, tm time, ts timestamp, tstz timestamptz, iv interval, by bytea, m mood,
  ia int4[], ta text[][], ba bool[], i8a int8[], n text`

const VALUES = `
  -32768, 2147483647, 9223372036854775807, 123456789.125, 1.5, 0.1, 'Infinity', '-Infinity', 'NaN',
  true, 'hé "quoted" \\ back', 'short', 'ab', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{"a": [1, 2]}', '{"b": {"c": null}}',
  '2024-01-02', '03:04:05.123', '2024-01-02 03:04:05.678', '2024-01-02 03:04:05+02', '1 day 2 hours 3.5 seconds', '\\x0102ff', 'happy',
  '{1,NULL,3}', '{{"a","b"},{"c","d,e\\"f"}}', '{t,f}', '{9223372036854775807,-1}', NULL`

const EXPECTED = {
  i2: -32768,
  i4: 2147483647,
  i8: 9223372036854775807n,
  num: '123456789.125',
  f4: 1.5,
  f8: 0.1,
  f8_inf: Infinity,
  f8_ninf: -Infinity,
  f8_nan: NaN,
  b: true,
  t: 'hé "quoted" \\ back',
  vc: 'short',
  c: 'ab ',
  u: 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
  j: { a: [1, 2] },
  jb: { b: { c: null } },
  d: '2024-01-02',
  tm: '03:04:05.123',
  ts: '2024-01-02 03:04:05.678',
  tstz: '2024-01-02 01:04:05+00',
  iv: 'P1DT2H3.5S',
  by: '\\x0102ff',
  m: 'happy',
  ia: [1, null, 3],
  ta: [
    ['a', 'b'],
    ['c', 'd,e"f'],
  ],
  ba: [true, false],
  i8a: [9223372036854775807n, -1n],
  n: null,
}

beforeAll(async () => {
  sluice = await startTestSluice()
  await sluice.db.pool.query(`CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy')`)
  await sluice.db.pool.query(`CREATE TABLE all_types (id int PRIMARY KEY, ${COLUMNS})`)
  await sluice.db.pool.query(`INSERT INTO all_types VALUES (1, ${VALUES})`)
  await sluice.db.pool.query(`CREATE SCHEMA "App Data"`)
  await sluice.db.pool.query(`CREATE TABLE "App Data"."my ""special"" table" (id text PRIMARY KEY, "Value" text)`)
  await sluice.db.pool.query(`INSERT INTO "App Data"."my ""special"" table" VALUES ('a/b', 'x')`)
})

afterAll(async () => {
  await sluice?.close()
})

describe('types through @electric-sql/client', () => {
  it('parses every type the same from the snapshot and from replication', async () => {
    const stream = new ShapeStream({ url: sluice.shapeUrl(), params: { table: 'all_types' } })
    const shape = shapeOf(stream)
    const [snapshotRow] = await shape.rows
    expect(snapshotRow).toEqual({ id: 1, ...EXPECTED })

    await sluice.db.pool.query(`INSERT INTO all_types VALUES (2, ${VALUES})`)
    const replicated = await waitFor(() => {
      const row = shape.currentRows.find((r) => r['id'] === 2)
      expect(row).toBeDefined()
      return row!
    })
    expect(replicated).toEqual({ id: 2, ...EXPECTED })
    expect(stream.shapeHandle).toBeTruthy()
    shape.unsubscribeAll()
  })

  it('gives domain values as text, as Electric names a domain by its own name', async () => {
    await sluice.db.pool.query(`
      CREATE DOMAIN small_count AS int4 CHECK (VALUE >= 0);
      CREATE DOMAIN price AS numeric(10, 2);
      CREATE DOMAIN label AS text;
      CREATE TABLE domains (id int PRIMARY KEY, n small_count, p price, l label, ps price[]);
      INSERT INTO domains VALUES (1, 42, 12.5, 'x', '{1.25,NULL}');`)
    const stream = new ShapeStream({ url: sluice.shapeUrl(), params: { table: 'domains', where: 'n > 40' } })
    const shape = shapeOf(stream)
    expect(await shape.rows).toEqual([{ id: 1, n: '42', p: '12.50', l: 'x', ps: ['1.25', null] }])
    await sluice.db.pool.query(`INSERT INTO domains VALUES (2, 43, 0.5, 'y', '{}')`)
    await waitFor(() => expect(shape.currentRows.find((r) => r['id'] === 2)).toEqual({ id: 2, n: '43', p: '0.50', l: 'y', ps: [] }))
    shape.unsubscribeAll()
  })

  it('serves a quoted, schema-qualified table whose name has spaces and quotes', async () => {
    const table = `"App Data"."my ""special"" table"`
    const stream = new ShapeStream({ url: sluice.shapeUrl(), params: { table } })
    const shape = shapeOf(stream)
    expect(await shape.rows).toEqual([{ id: 'a/b', Value: 'x' }])
    await sluice.db.pool.query(`UPDATE "App Data"."my ""special"" table" SET "Value" = 'y'`)
    await sluice.db.pool.query(`INSERT INTO "App Data"."my ""special"" table" VALUES ('c', NULL)`)
    await waitFor(() => expect(sortRows(shape.currentRows)).toEqual([{ id: 'a/b', Value: 'y' }, { id: 'c', Value: null }]))
    shape.unsubscribeAll()
  })
})

function sortRows(rows: Row[]): Row[] {
  return [...rows].sort((a, b) => String(a['id']).localeCompare(String(b['id'])))
}
