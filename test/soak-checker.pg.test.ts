/**
 * The soak's checker must catch what it is there to catch: against a real history (the soak's
 * schema, clock and triggers), a follower's rows at a cut pass only when they are the table's
 * state at that cut — a torn transaction, a lost write, a row that never existed, a state that
 * ignores what its snapshot saw, and a transaction that never committed each fail.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Checker, type Observation } from '../soak/checker.js'
import { History } from '../soak/history.js'
import { clockStatement, createSchema } from '../soak/schema.js'
import { SHAPES } from '../soak/shapes.js'
import { createTestDatabase, type TestDatabase } from './support/database.js'

let db: TestDatabase
const xids: number[] = []
let snapshotAfterFirst: { xmin: string; xmax: string; xip_list: string[] }

/** Commits `statements` as a writer does; returns the transaction's 32-bit xid. */
async function commit(...statements: string[]): Promise<number> {
  const client = await db.pool.connect()
  try {
    await client.query('BEGIN')
    for (const statement of statements) await client.query(statement)
    const { rows } = await client.query<{ xid: string }>(`SELECT pg_current_xact_id()::text AS xid`)
    await client.query(clockStatement('small'))
    await client.query('COMMIT')
    return Number(BigInt(rows[0]!.xid) & 0xffff_ffffn)
  } finally {
    client.release()
  }
}

beforeAll(async () => {
  db = await createTestDatabase()
  await createSchema(db.pool)
  xids.push(await commit(`INSERT INTO accounts VALUES (1, 0, 10, 'a'), (2, 1, 20, 'b')`))
  const { rows } = await db.pool.query<{ s: string }>(`SELECT pg_current_snapshot()::text AS s`)
  const [xmin, xmax, xip] = rows[0]!.s.split(':')
  snapshotAfterFirst = { xmin: xmin!, xmax: xmax!, xip_list: xip ? xip.split(',') : [] }
  xids.push(await commit(`UPDATE accounts SET v = 11 WHERE id = 1`, `DELETE FROM accounts WHERE id = 2`))
  xids.push(await commit(`INSERT INTO accounts VALUES (3, 2, 30, 'c')`))
})

afterAll(async () => {
  await db?.drop()
})

const row = (id: number, owner: number, v: number, note: string) => [`"public"."accounts"/"${id}"`, { id: String(id), owner: String(owner), v: String(v), note }] as const

/** Checks one observation; `reads`: history reads until it is judged (an unknown transaction waits for three). */
async function observe(rows: ReturnType<typeof row>[], lastXid: number | undefined, snapshotEnd = snapshotAfterFirst, traced: Partial<Observation> = {}, reads = 3): Promise<Checker> {
  const history = new History()
  const checker = new Checker(history, Date.now())
  const observation: Observation = { follower: 'f', spec: SHAPES.accounts, handle: 'h', offset: '1_0', rows: new Map(rows), snapshotEnd, lastXid, at: Date.now(), ...traced }
  checker.observe(observation)
  for (let i = 0; i < reads; i++) await read(history, checker)
  expect(checker.checks + checker.violations.length).toBeGreaterThan(0)
  return checker
}

async function read(history: History, checker: Checker): Promise<void> {
  const readStartedAt = Date.now() + 1
  await history.refresh(db.url)
  checker.checkPending(readStartedAt)
}

async function check(rows: ReturnType<typeof row>[], lastXid: number | undefined, snapshotEnd = snapshotAfterFirst): Promise<string[]> {
  return (await observe(rows, lastXid, snapshotEnd)).violations.map((v) => v.kind)
}

describe('soak checker', () => {
  it('passes the state at each cut', async () => {
    expect(await check([row(0, 0, 0, 'canary'), row(1, 0, 10, 'a'), row(2, 1, 20, 'b')], undefined)).toEqual([])
    expect(await check([row(0, 0, 0, 'canary'), row(1, 0, 11, 'a')], xids[1])).toEqual([])
    expect(await check([row(0, 0, 0, 'canary'), row(1, 0, 11, 'a'), row(3, 2, 30, 'c')], xids[2])).toEqual([])
  })

  it('fails a torn transaction, a lost write, a row that never existed, and an unknown transaction', async () => {
    expect(await check([row(0, 0, 0, 'canary'), row(1, 0, 11, 'a'), row(2, 1, 20, 'b')], xids[1])).toEqual(['mismatch'])
    expect(await check([row(0, 0, 0, 'canary'), row(1, 0, 11, 'a')], xids[2])).toEqual(['mismatch'])
    expect(await check([row(0, 0, 0, 'canary'), row(1, 0, 11, 'a'), row(9, 0, 1, 'x')], xids[1])).toEqual(['mismatch'])
    expect(await check([row(0, 0, 0, 'canary'), row(1, 0, 11, 'a')], 999_999)).toEqual(['unknownTransaction'])
  })

  it('counts what the snapshot saw, and only that', async () => {
    const sawAll = { xmin: '999999', xmax: '999999', xip_list: [] }
    expect(await check([row(0, 0, 0, 'canary'), row(1, 0, 11, 'a'), row(3, 2, 30, 'c')], undefined, sawAll)).toEqual([])
    expect(await check([row(0, 0, 0, 'canary'), row(1, 0, 10, 'a'), row(2, 1, 20, 'b')], undefined, sawAll)).toEqual(['mismatch'])
  })

  it('names, for each differing row, what the client received for it beside the history’s versions around the cut', async () => {
    const checker = await observe([row(0, 0, 0, 'canary'), row(1, 0, 10, 'a')], xids[1], snapshotAfterFirst, {
      row: (id) => `row ${id} as the client got it`,
      trace: () => 'the last responses',
    })
    const detail = checker.violations[0]!.detail
    expect(detail).toContain(`cut at clock 3, last xid ${xids[1]}`)
    expect(detail).toContain('id 1: client got row 1 as the client got it; history clock 2 xid')
    expect(detail).toMatch(/clock 2 xid \d+: \["1","0","10","a"\]; clock 3 xid \d+: \["1","0","11","a"\]/)
    expect(detail).not.toContain('after the cut')
    expect(detail).toContain('received: the last responses')
    const reread = await observe([row(0, 0, 0, 'canary'), row(1, 0, 10, 'a')], xids[1], snapshotAfterFirst, { reread: async (ids) => `read again for ${ids.join(',')}` })
    await reread.settled()
    expect(reread.violations[0]!.detail).toMatch(/; log read again: read again for 1$/)
    const early = (await observe([row(0, 0, 0, 'canary'), row(1, 0, 11, 'a'), row(2, 1, 20, 'b')], undefined)).violations[0]!.detail
    expect(early).toMatch(/id 1: client got untraced; history clock 2 xid \d+: \["1","0","10","a"\]; clock 3 xid \d+ \(after the cut\): \["1","0","11","a"\]/)
  })

  it('waits for a transaction a client holds before the history shows it, and reports one that never shows', async () => {
    const history = new History()
    const checker = new Checker(history, Date.now())
    const client = await db.pool.connect()
    try {
      await client.query('BEGIN')
      await client.query(`INSERT INTO accounts VALUES (4, 3, 40, 'd')`)
      const { rows } = await client.query<{ xid: string }>(`SELECT pg_current_xact_id()::text AS xid`)
      const xid = Number(BigInt(rows[0]!.xid) & 0xffff_ffffn)
      checker.observe({ follower: 'f', spec: SHAPES.accounts, handle: 'h', offset: '1_0', rows: new Map(), snapshotEnd: snapshotAfterFirst, lastXid: xid, at: Date.now() })
      checker.observe({ follower: 'g', spec: SHAPES.accounts, handle: 'h', offset: '1_0', rows: new Map(), snapshotEnd: snapshotAfterFirst, lastXid: 999_999, at: Date.now() })
      await read(history, checker)
      await client.query(clockStatement('small'))
      await client.query('COMMIT')
      await read(history, checker)
      await read(history, checker)
      expect(checker.violations.map((v) => [v.follower, v.kind])).toEqual([
        ['f', 'mismatch'],
        ['g', 'unknownTransaction'],
      ])
    } finally {
      client.release()
    }
  })
})
