import { describe, expect, it } from 'vitest'
import { encodeChange, type EncodeContext } from '../../src/shapes/change-encoder.js'
import { UNCHANGED_TOAST } from '../../src/replication/pgoutput-messages.js'
import type { Relation } from '../../src/replication/transaction.js'

const items: Relation = {
  tag: 'relation',
  oid: 16384,
  schema: 'public',
  name: 'items',
  replicaIdentity: 'f',
  columns: [
    { name: 'id', typeOid: 23, isKey: true },
    { name: 'title', typeOid: 25, isKey: false },
    { name: 'body', typeOid: 25, isKey: false },
    { name: 'done', typeOid: 16, isKey: false },
  ],
}

const memberships: Relation = {
  tag: 'relation',
  oid: 16390,
  schema: 'app',
  name: 'member ships',
  replicaIdentity: 'f',
  columns: [
    { name: 'org', typeOid: 25, isKey: true },
    { name: 'user', typeOid: 25, isKey: true },
    { name: 'role', typeOid: 25, isKey: false },
  ],
}

function context(replica: 'default' | 'full'): EncodeContext {
  return {
    keyPrefix: '"public"."items"',
    relationName: ['public', 'items'],
    primaryKey: ['id'],
    replica,
    lsn: '26848344',
    xid: 771,
  }
}

const DEFAULT = context('default')
const FULL = context('full')

const headers = (operation: 'insert' | 'update' | 'delete', op_position = 0) => ({
  operation,
  relation: ['public', 'items'],
  lsn: '26848344',
  op_position,
  txids: [771],
})

describe('encodeChange: insert', () => {
  it.each([DEFAULT, FULL])('sends the full row (replica $replica)', (ctx) => {
    const messages = encodeChange(ctx, { kind: 'insert', relation: items, record: ['1', 'a', null, 't'] }, 3)
    expect(messages).toEqual([
      {
        key: '"public"."items"/"1"',
        value: { id: '1', title: 'a', body: null, done: 't' },
        headers: headers('insert', 3),
      },
    ])
    expect(messages[0]).not.toHaveProperty('old_value')
  })

  it('serializes exactly once to the wire form', () => {
    const [message] = encodeChange(DEFAULT, { kind: 'insert', relation: items, record: ['1', 'a', null, 't'] }, 0)
    expect(JSON.stringify(message)).toBe(
      '{"key":"\\"public\\".\\"items\\"/\\"1\\"","value":{"id":"1","title":"a","body":null,"done":"t"},' +
        '"headers":{"operation":"insert","relation":["public","items"],"lsn":"26848344","op_position":0,"txids":[771]}}',
    )
  })
})

describe('encodeChange: delete', () => {
  it('sends only the primary key with replica default', () => {
    expect(encodeChange(DEFAULT, { kind: 'delete', relation: items, old: ['1', 'a', 'text', 'f'] }, 0)).toEqual([
      { key: '"public"."items"/"1"', value: { id: '1' }, headers: headers('delete') },
    ])
  })

  it('sends the full old row with replica full', () => {
    expect(encodeChange(FULL, { kind: 'delete', relation: items, old: ['1', 'a', 'text', 'f'] }, 5)).toEqual([
      {
        key: '"public"."items"/"1"',
        value: { id: '1', title: 'a', body: 'text', done: 'f' },
        headers: headers('delete', 5),
      },
    ])
  })
})

describe('encodeChange: update', () => {
  const old = ['1', 'a', 'text', 'f'] as const
  const record = ['1', 'b', 'text', 't'] as const

  it('sends the primary key and the changed columns only with replica default', () => {
    const messages = encodeChange(DEFAULT, { kind: 'update', relation: items, old, record }, 1)
    expect(messages).toEqual([
      { key: '"public"."items"/"1"', value: { id: '1', title: 'b', done: 't' }, headers: headers('update', 1) },
    ])
    expect(messages[0]).not.toHaveProperty('old_value')
  })

  it('sends the full new row and old values of changed columns with replica full', () => {
    expect(encodeChange(FULL, { kind: 'update', relation: items, old, record }, 1)).toEqual([
      {
        key: '"public"."items"/"1"',
        value: { id: '1', title: 'b', body: 'text', done: 't' },
        old_value: { title: 'a', done: 'f' },
        headers: headers('update', 1),
      },
    ])
  })

  it('pins the replica full update on the wire', () => {
    const [message] = encodeChange(FULL, { kind: 'update', relation: items, old, record }, 2)
    // The stored bytes, key order included.
    expect(JSON.stringify(message)).toMatchInlineSnapshot(`"{"key":"\\"public\\".\\"items\\"/\\"1\\"","value":{"id":"1","title":"b","body":"text","done":"t"},"old_value":{"title":"a","done":"f"},"headers":{"operation":"update","relation":["public","items"],"lsn":"26848344","op_position":2,"txids":[771]}}"`)
  })

  it('treats a change to or from NULL as a change', () => {
    expect(
      encodeChange(FULL, { kind: 'update', relation: items, old: ['1', 'a', null, 'f'], record: ['1', null, 'x', 'f'] }, 0),
    ).toEqual([
      {
        key: '"public"."items"/"1"',
        value: { id: '1', title: null, body: 'x', done: 'f' },
        old_value: { title: 'a', body: null },
        headers: headers('update'),
      },
    ])
  })

  it.each([DEFAULT, FULL])('sends nothing for an update that changes no column (replica $replica)', (ctx) => {
    expect(encodeChange(ctx, { kind: 'update', relation: items, old, record: [...old] }, 0)).toEqual([])
  })

  it('sends the whole new row when there is no old tuple', () => {
    expect(encodeChange(DEFAULT, { kind: 'update', relation: items, old: undefined, record }, 0)).toEqual([
      { key: '"public"."items"/"1"', value: { id: '1', title: 'b', body: 'text', done: 't' }, headers: headers('update') },
    ])
    const [full] = encodeChange(FULL, { kind: 'update', relation: items, old: undefined, record }, 0)
    expect(full).toEqual({
      key: '"public"."items"/"1"',
      value: { id: '1', title: 'b', body: 'text', done: 't' },
      headers: headers('update'),
    })
    expect(full).not.toHaveProperty('old_value')
  })

  it('turns a primary-key change into a delete of the old key, then an insert of the new (replica default)', () => {
    expect(
      encodeChange(DEFAULT, { kind: 'update', relation: items, old: ['1', 'a', 'text', 'f'], record: ['2', 'a', 'text', 'f'] }, 4),
    ).toEqual([
      { key: '"public"."items"/"1"', value: { id: '1' }, headers: headers('delete', 4) },
      {
        key: '"public"."items"/"2"',
        value: { id: '2', title: 'a', body: 'text', done: 'f' },
        headers: headers('insert', 4),
      },
    ])
  })

  it('turns a primary-key change into a delete of the full old row, then an insert (replica full)', () => {
    expect(
      encodeChange(FULL, { kind: 'update', relation: items, old: ['1', 'a', 'text', 'f'], record: ['2', 'b', 'text', 'f'] }, 0),
    ).toEqual([
      {
        key: '"public"."items"/"1"',
        value: { id: '1', title: 'a', body: 'text', done: 'f' },
        headers: headers('delete'),
      },
      {
        key: '"public"."items"/"2"',
        value: { id: '2', title: 'b', body: 'text', done: 'f' },
        headers: headers('insert'),
      },
    ])
  })

  describe('unchanged TOAST values', () => {
    const toastOld = ['1', 'a', 'a very long text', 'f'] as const
    const toastNew = ['1', 'b', UNCHANGED_TOAST, 'f'] as const

    it('takes the value from the old row and does not count it as changed (replica full)', () => {
      expect(encodeChange(FULL, { kind: 'update', relation: items, old: toastOld, record: toastNew }, 0)).toEqual([
        {
          key: '"public"."items"/"1"',
          value: { id: '1', title: 'b', body: 'a very long text', done: 'f' },
          old_value: { title: 'a' },
          headers: headers('update'),
        },
      ])
    })

    it('leaves it out of a replica default update', () => {
      expect(encodeChange(DEFAULT, { kind: 'update', relation: items, old: toastOld, record: toastNew }, 0)).toEqual([
        { key: '"public"."items"/"1"', value: { id: '1', title: 'b' }, headers: headers('update') },
      ])
    })

    it('sends nothing when only TOASTed columns were untouched and nothing else changed', () => {
      expect(
        encodeChange(FULL, { kind: 'update', relation: items, old: toastOld, record: ['1', 'a', UNCHANGED_TOAST, 'f'] }, 0),
      ).toEqual([])
    })

    it('omits the column when there is no old row to take it from', () => {
      const [message] = encodeChange(FULL, { kind: 'update', relation: items, old: undefined, record: toastNew }, 0)
      expect(message?.value).toEqual({ id: '1', title: 'b', done: 'f' })
      expect(message?.value).not.toHaveProperty('body')
    })
  })
})

describe('encodeChange: keys', () => {
  const ctx: EncodeContext = {
    keyPrefix: '"app"."member ships"',
    relationName: ['app', 'member ships'],
    primaryKey: ['org', 'user'],
    replica: 'default',
    lsn: '1',
    xid: 1,
  }

  it('builds composite keys in primary-key order, escaping / and writing NULL as _', () => {
    const [message] = encodeChange(ctx, { kind: 'insert', relation: memberships, record: ['a/b', null, 'admin'] }, 0)
    expect(message?.key).toBe('"app"."member ships"/"a//b"/_')
    expect(message?.headers.relation).toEqual(['app', 'member ships'])
  })

  it('sends the whole composite key on delete with replica default', () => {
    expect(encodeChange(ctx, { kind: 'delete', relation: memberships, old: ['o', 'u', 'r'] }, 0)[0]?.value).toEqual({
      org: 'o',
      user: 'u',
    })
  })

  it('treats a change of one key part as a key change', () => {
    const messages = encodeChange(
      ctx,
      { kind: 'update', relation: memberships, old: ['o', 'u1', 'r'], record: ['o', 'u2', 'r'] },
      0,
    )
    expect(messages.map((m) => [m.headers.operation, m.key])).toEqual([
      ['delete', '"app"."member ships"/"o"/"u1"'],
      ['insert', '"app"."member ships"/"o"/"u2"'],
    ])
  })
})
