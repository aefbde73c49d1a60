/**
 * Starts one real PostgreSQL (embedded, major 17, wal_level=logical) for the whole test run,
 * unless TEST_DATABASE_URL points at one already. Suites create their own databases in it.
 */
import type { TestProject } from 'vitest/node'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startEmbeddedPostgres } from '../../src/pg/embedded.js'
import { freePort } from '../../src/pg/free-port.js'

declare module 'vitest' {
  export interface ProvidedContext {
    databaseUrl: string
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const given = process.env['TEST_DATABASE_URL']
  if (given) {
    project.provide('databaseUrl', given)
    return async () => {}
  }
  const dir = await mkdtemp(join(tmpdir(), 'sluice-test-pg-'))
  const cluster = await startEmbeddedPostgres({ dir, port: await freePort() })
  project.provide('databaseUrl', cluster.url)
  return async () => {
    await cluster.stop()
    await rm(dir, { recursive: true, force: true })
  }
}
