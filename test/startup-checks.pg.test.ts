import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import pg from 'pg'
import { randomBytes } from 'node:crypto'
import { StartupCheckError } from '../src/errors.js'
import { runStartupChecks } from '../src/pg/startup-checks.js'
import { createTestDatabase, type TestDatabase } from './support/database.js'

let db: TestDatabase
const suffix = randomBytes(4).toString('hex')
// A name that needs quoting, so the hint's quoting is exercised too.
const plainRole = `Sluice Reader ${suffix}`
const replicationRole = `sluice_replicator_${suffix}`
const password = 'pw-for-tests'

beforeAll(async () => {
  db = await createTestDatabase()
  await db.pool.query(`CREATE ROLE "${plainRole}" LOGIN PASSWORD '${password}'`)
  await db.pool.query(`CREATE ROLE "${replicationRole}" LOGIN REPLICATION PASSWORD '${password}'`)
})

afterAll(async () => {
  await db?.pool.query(`DROP ROLE IF EXISTS "${plainRole}"`)
  await db?.pool.query(`DROP ROLE IF EXISTS "${replicationRole}"`)
  await db?.drop()
})

/** Runs the checks over a connection that logs in as `role`. */
async function checkAs(role: string, slotName = 'sluice'): Promise<Awaited<ReturnType<typeof runStartupChecks>>> {
  const url = new URL(db.url)
  url.username = encodeURIComponent(role)
  url.password = password
  const client = new pg.Client({ connectionString: url.toString() })
  await client.connect()
  try {
    return await runStartupChecks(client, { slotName })
  } finally {
    await client.end()
  }
}

describe('runStartupChecks', () => {
  it('passes on the test cluster and identifies it', async () => {
    const result = await runStartupChecks(db.pool, { slotName: 'sluice' })
    const { rows } = await db.pool.query<{ id: string; version: string }>(
      `SELECT system_identifier::text AS id, current_setting('server_version_num') AS version FROM pg_control_system()`,
    )
    expect(result).toEqual({ serverVersionNum: Number(rows[0]?.version), systemIdentifier: rows[0]?.id })
    expect(result.serverVersionNum).toBeGreaterThanOrEqual(170000)
    expect(result.systemIdentifier).toMatch(/^[1-9][0-9]{15,19}$/)
  })

  it('passes for a role with REPLICATION that is not a superuser', async () => {
    const result = await checkAs(replicationRole)
    expect(result.serverVersionNum).toBeGreaterThanOrEqual(140000)
  })

  it('tells a role without REPLICATION how to get it', async () => {
    const failure = await checkAs(plainRole).then(
      () => undefined,
      (error: unknown) => error,
    )
    expect(failure).toBeInstanceOf(StartupCheckError)
    expect((failure as StartupCheckError).code).toBe('startup_check_failed')
    expect((failure as Error).message).toBe(
      'PostgreSQL is not ready for Sluice:\n\n' +
        `1. The role "${plainRole}" that Sluice connects as lacks the REPLICATION attribute, so it cannot stream changes. ` +
        'As a superuser run:\n\n' +
        `    ALTER ROLE "${plainRole}" WITH REPLICATION;`,
    )
  })
})
