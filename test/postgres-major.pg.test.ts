/**
 * Each vitest project runs against one PostgreSQL major (vitest.config.ts, pg14 … pg18). This
 * suite pins which one it is, and that Sluice's startup checks accept it, for a superuser and
 * for a role that has only REPLICATION.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest'
import pg from 'pg'
import { randomBytes } from 'node:crypto'
import { runStartupChecks } from '../src/pg/startup-checks.js'
import { createTestDatabase, type TestDatabase } from './support/database.js'

let db: TestDatabase
const role = `sluice_major_${randomBytes(4).toString('hex')}`
const password = 'pw-for-tests'

beforeAll(async () => {
  db = await createTestDatabase()
  await db.pool.query(`CREATE ROLE ${role} LOGIN REPLICATION PASSWORD '${password}'`)
})

afterAll(async () => {
  await db?.pool.query(`DROP ROLE IF EXISTS ${role}`)
  await db?.drop()
})

describe(`PostgreSQL ${inject('pgMajor')}`, () => {
  it('is the major this project asked for, and passes the startup checks', async () => {
    const result = await runStartupChecks(db.pool, { slotName: 'sluice' })
    expect(Math.floor(result.serverVersionNum / 10_000)).toBe(inject('pgMajor'))
    expect(result.serverVersionNum).toBeGreaterThanOrEqual(140000)
  })

  it('passes the startup checks for a role with REPLICATION that is not a superuser', async () => {
    const url = new URL(db.url)
    url.username = role
    url.password = password
    const client = new pg.Client({ connectionString: url.toString() })
    await client.connect()
    try {
      const result = await runStartupChecks(client, { slotName: 'sluice' })
      expect(Math.floor(result.serverVersionNum / 10_000)).toBe(inject('pgMajor'))
    } finally {
      await client.end()
    }
  })
})
