/**
 * Sluice with `SLUICE_WORKERS=2` in child processes (docs/ARCHITECTURE.md I27) on a test database,
 * with a data directory, slot and publication of its own. It says it listens once one worker
 * does: a test that needs both waits for them itself.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ChildSluice } from './child-sluice.js'
import type { TestDatabase } from './database.js'

/** `name`: lower case letters, digits and `_` (it names the slot and publication). */
export async function startTwoWorkers(db: TestDatabase, name: string, env: Record<string, string> = {}, preload: readonly URL[] = []): Promise<ChildSluice> {
  const dataDir = await mkdtemp(join(tmpdir(), `sluice-${name}-`))
  const id = `${name}_${process.pid}`
  const sluice = new ChildSluice({ DATABASE_URL: db.url, SLUICE_DATA_DIR: dataDir, SLUICE_REPLICATION_SLOT: id, SLUICE_PUBLICATION: id, SLUICE_WORKERS: '2', ...env }, preload)
  try {
    await sluice.start()
  } catch (error) {
    await stopTwoWorkers(sluice, undefined)
    throw error
  }
  return sluice
}

/** Kills what `startTwoWorkers` started and removes its data directory, then drops `db`; either may be missing after a failed start. */
export async function stopTwoWorkers(sluice: ChildSluice | undefined, db: TestDatabase | undefined): Promise<void> {
  await sluice?.kill()
  await db?.drop()
  const dataDir = sluice?.env['SLUICE_DATA_DIR']
  if (dataDir) await rm(dataDir, { recursive: true, force: true })
}
