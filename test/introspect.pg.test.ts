import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadTableInfo, typeModifiers } from '../src/pg/introspect.js'
import { electricSchema } from '../src/protocol/electric-schema.js'
import { createTestDatabase, type TestDatabase } from './support/database.js'

let db: TestDatabase

beforeAll(async () => {
  db = await createTestDatabase()
  await db.pool.query(`
    CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
    CREATE DOMAIN price AS numeric(10, 2);
    CREATE DOMAIN short_text AS varchar(5);
    CREATE DOMAIN int_list AS int4[];
    CREATE SCHEMA app;
    CREATE TABLE app.every_type (
      id int8 PRIMARY KEY,
      small int2,
      regular int4 NOT NULL,
      amount numeric(10, 2),
      plain_numeric numeric,
      ratio float4,
      precise float8,
      flag bool,
      body text,
      label varchar(20),
      free_varchar varchar,
      code char(3),
      one_char char,
      uid uuid,
      doc json,
      docb jsonb,
      day date,
      at_time time,
      at timestamp,
      at_tz timestamptz,
      span interval,
      bytes bytea,
      feeling mood NOT NULL,
      ints int4[],
      matrix text[][],
      labels varchar(7)[],
      cost price,
      short short_text,
      moods mood[],
      costs price[],
      ints_domain int_list
    );
    CREATE TABLE composite (b text, a int4, c int8, PRIMARY KEY (c, b));
    CREATE TABLE no_pk (x int4, y text);
    CREATE TABLE "Mixed Case" ("Id" int4 PRIMARY KEY, "has""quote" text);
    CREATE TABLE dropped (id int4 PRIMARY KEY, gone text, kept text);
    ALTER TABLE dropped DROP COLUMN gone;
    CREATE TABLE generated (id int4 PRIMARY KEY, doubled int4 GENERATED ALWAYS AS (id * 2) STORED);
    CREATE TABLE parted (id int4, region text, PRIMARY KEY (region, id)) PARTITION BY LIST (region);
    CREATE TABLE copied AS SELECT ARRAY[1, 2] AS ints;
    CREATE VIEW a_view AS SELECT 1 AS x;
    ALTER TABLE no_pk REPLICA IDENTITY FULL;
  `)
})

afterAll(async () => {
  await db?.drop()
})

describe('loadTableInfo', () => {
  it('describes every type the client parses, as the electric-schema header', async () => {
    const info = await loadTableInfo(db.pool, { schema: 'app', name: 'every_type' })
    expect(info).toBeDefined()
    expect(info?.table).toEqual({ schema: 'app', name: 'every_type' })
    expect(info?.primaryKey).toEqual(['id'])
    expect(info?.replicaIdentity).toBe('default')
    const schema = electricSchema(info!)
    expect(schema).toStrictEqual({
      id: { type: 'int8', pk_index: 0, not_null: true },
      small: { type: 'int2' },
      regular: { type: 'int4', not_null: true },
      amount: { type: 'numeric', precision: 10, scale: 2 },
      plain_numeric: { type: 'numeric' },
      ratio: { type: 'float4' },
      precise: { type: 'float8' },
      flag: { type: 'bool' },
      body: { type: 'text' },
      label: { type: 'varchar', max_length: 20 },
      free_varchar: { type: 'varchar' },
      code: { type: 'bpchar', length: 3 },
      one_char: { type: 'bpchar', length: 1 },
      uid: { type: 'uuid' },
      doc: { type: 'json' },
      docb: { type: 'jsonb' },
      day: { type: 'date' },
      at_time: { type: 'time' },
      at: { type: 'timestamp' },
      at_tz: { type: 'timestamptz' },
      span: { type: 'interval' },
      bytes: { type: 'bytea' },
      feeling: { type: 'mood', not_null: true },
      ints: { type: 'int4', dims: 1 },
      matrix: { type: 'text', dims: 2 },
      labels: { type: 'varchar', dims: 1, max_length: 7 },
      // Domains by their own names, without modifiers, as Electric gives them.
      cost: { type: 'price' },
      short: { type: 'short_text' },
      moods: { type: 'mood', dims: 1 },
      costs: { type: 'price', dims: 1 },
      ints_domain: { type: 'int_list' },
    })
    // `where` still sees their base types.
    const types = Object.fromEntries(info!.columns.map((c) => [c.name, [c.typeName, c.dims]]))
    expect([types['cost'], types['short'], types['costs'], types['ints_domain']]).toEqual([
      ['numeric', 0],
      ['varchar', 0],
      ['numeric', 1],
      ['int4', 1],
    ])
    // The header lists columns in table order, as `SELECT *` returns them.
    expect(Object.keys(schema)).toEqual(info?.columns.map((c) => c.name))
    expect(Object.keys(schema).slice(0, 3)).toEqual(['id', 'small', 'regular'])
  })

  it('keeps the declared type OIDs, in column order', async () => {
    const info = await loadTableInfo(db.pool, { schema: 'app', name: 'every_type' })
    const { rows } = await db.pool.query<{ attname: string; atttypid: number }>(
      `SELECT attname, atttypid FROM pg_attribute WHERE attrelid = 'app.every_type'::regclass AND attnum > 0 ORDER BY attnum`,
    )
    expect(info?.columns.map((c) => [c.name, c.typeOid])).toEqual(rows.map((r) => [r.attname, r.atttypid]))
    expect(info?.columns.find((c) => c.name === 'ints')?.typeOid).toBe(1007)
    expect(info?.oid).toBe(
      (await db.pool.query<{ oid: number }>(`SELECT 'app.every_type'::regclass::oid AS oid`)).rows[0]?.oid,
    )
  })

  it('orders a composite primary key by key position, not column position', async () => {
    const info = await loadTableInfo(db.pool, { schema: 'public', name: 'composite' })
    expect(info?.primaryKey).toEqual(['c', 'b'])
    expect(info?.identity).toEqual({ source: 'primary-key' })
    expect(electricSchema(info!)).toStrictEqual({
      b: { type: 'text', pk_index: 1, not_null: true },
      a: { type: 'int4' },
      c: { type: 'int8', pk_index: 0, not_null: true },
    })
  })

  it('uses every column as the key of a table without a primary key', async () => {
    const info = await loadTableInfo(db.pool, { schema: 'public', name: 'no_pk' })
    expect(info?.primaryKey).toEqual(['x', 'y'])
    expect(info?.identity).toEqual({ source: 'all-columns' })
    expect(info?.replicaIdentity).toBe('full')
    expect(info?.columns.map((c) => c.pkIndex)).toEqual([undefined, undefined])
    expect(electricSchema(info!)).toStrictEqual({ x: { type: 'int4' }, y: { type: 'text' } })
  })

  it('keys a table without a primary key on its narrowest unique index over NOT NULL columns', async () => {
    await db.pool.query(`
      CREATE TABLE uniquely (a int NOT NULL, b int NOT NULL, c int NOT NULL, d int, note text);
      CREATE UNIQUE INDEX uniquely_abc ON uniquely (a, b, c);
      CREATE UNIQUE INDEX uniquely_cb ON uniquely (c, b) INCLUDE (note);
      CREATE UNIQUE INDEX uniquely_d ON uniquely (d);
    `)
    const info = await loadTableInfo(db.pool, { schema: 'public', name: 'uniquely' })
    expect(info?.identity).toEqual({ source: 'unique-index', index: 'uniquely_cb' })
    expect(info?.primaryKey).toEqual(['c', 'b'])
    expect(info?.columns.map((c) => c.pkIndex)).toEqual([undefined, 1, 0, undefined, undefined])
  })

  it('finds quoted names exactly', async () => {
    const info = await loadTableInfo(db.pool, { schema: 'public', name: 'Mixed Case' })
    expect(electricSchema(info!)).toStrictEqual({
      Id: { type: 'int4', pk_index: 0, not_null: true },
      'has"quote': { type: 'text' },
    })
    expect(await loadTableInfo(db.pool, { schema: 'public', name: 'mixed case' })).toBeUndefined()
  })

  it('skips dropped columns and keeps generated ones', async () => {
    const dropped = await loadTableInfo(db.pool, { schema: 'public', name: 'dropped' })
    expect(dropped?.columns.map((c) => c.name)).toEqual(['id', 'kept'])
    const generated = await loadTableInfo(db.pool, { schema: 'public', name: 'generated' })
    expect(generated?.columns.map((c) => c.name)).toEqual(['id', 'doubled'])
  })

  it('reads partitioned tables', async () => {
    const info = await loadTableInfo(db.pool, { schema: 'public', name: 'parted' })
    expect(info?.primaryKey).toEqual(['region', 'id'])
    expect(info?.partitioned).toBe(true)
  })

  it('gives an array column declared without dimensions one dimension', async () => {
    const { rows } = await db.pool.query<{ attndims: number }>(
      `SELECT attndims FROM pg_attribute WHERE attrelid = 'copied'::regclass AND attname = 'ints'`,
    )
    expect(rows[0]?.attndims).toBe(0)
    const info = await loadTableInfo(db.pool, { schema: 'public', name: 'copied' })
    expect(electricSchema(info!)).toStrictEqual({ ints: { type: 'int4', dims: 1 } })
  })

  it('returns undefined for missing tables, views and the wrong schema', async () => {
    expect(await loadTableInfo(db.pool, { schema: 'public', name: 'nope' })).toBeUndefined()
    expect(await loadTableInfo(db.pool, { schema: 'public', name: 'a_view' })).toBeUndefined()
    expect(await loadTableInfo(db.pool, { schema: 'public', name: 'every_type' })).toBeUndefined()
    expect(await loadTableInfo(db.pool, { schema: 'app', name: 'composite' })).toBeUndefined()
  })
})

describe('typeModifiers', () => {
  it('decodes numeric typmods the way format_type does, negative scales included', async () => {
    const { rows } = await db.pool.query<{ typmod: number; formatted: string }>(
      `SELECT atttypmod AS typmod, format_type(atttypid, atttypmod) AS formatted
         FROM pg_attribute WHERE attrelid = 'app.every_type'::regclass AND attname = 'amount'`,
    )
    expect(rows[0]?.formatted).toBe('numeric(10,2)')
    expect(typeModifiers('numeric', rows[0]!.typmod)).toEqual({ precision: 10, scale: 2 })
    // numeric(5,-2) is stored as ((5 << 16) | (-2 & 0x7ff)) + 4 since PostgreSQL 15.
    expect(typeModifiers('numeric', ((5 << 16) | (-2 & 0x7ff)) + 4)).toEqual({ precision: 5, scale: -2 })
    expect(typeModifiers('numeric', -1)).toEqual({})
    expect(typeModifiers('int4', 24)).toEqual({})
  })
})
