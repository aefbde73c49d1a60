/**
 * A PostgreSQL cluster of the project's major for one suite alone, for tests that change
 * server-wide settings: the project's shared cluster serves other suites at the same time.
 */
import { inject } from 'vitest'
import pg from 'pg'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startEmbeddedPostgres } from '../../src/pg/embedded.js'
import { freePort } from '../../src/pg/free-port.js'
import type { TestDatabase } from './database.js'
import { ALIASED_MAJORS, startTestCluster, type AliasedMajor, type TestCluster } from './pg-cluster.js'

export async function startPrivateCluster(): Promise<TestCluster> {
  const major = inject('pgMajor')
  if ((ALIASED_MAJORS as readonly number[]).includes(major)) return startTestCluster(major as AliasedMajor)
  const dir = await mkdtemp(join(tmpdir(), 'sluice-test-private-pg-'))
  const cluster = await startEmbeddedPostgres({ dir, port: await freePort() })
  return {
    url: cluster.url,
    major,
    async stop() {
      await cluster.stop()
      await rm(dir, { recursive: true, force: true })
    },
  }
}

/** The cluster's `postgres` database as a suite's database; dropping it stops the cluster. */
export function databaseOf(cluster: TestCluster): TestDatabase {
  const pool = new pg.Pool({ connectionString: cluster.url, max: 8 })
  // `end` lets go of connections before they have closed, and the cluster stops right after.
  pool.on('error', () => undefined)
  return {
    url: cluster.url,
    name: 'postgres',
    pool,
    async drop() {
      await pool.end()
      await cluster.stop()
    },
  }
}
