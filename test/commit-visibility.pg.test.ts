/**
 * A commit is in the WAL, and so on its way to Sluice, before its backend leaves PostgreSQL's
 * proc array: until then new snapshots still count it as running, and the order in which
 * transactions become visible need not be their commit order. Usually that lasts microseconds
 * (longer on a starved CPU: the rare failure of consistency.pg.test.ts, issue #14); with
 * synchronous replication it lasts until the standby answers. Here a standby that never answers
 * holds a committed transaction in that state for as long as a test needs, on a cluster of its
 * own (the setting is server-wide).
 */
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Follower } from './support/follower.js'
import { databaseOf, startPrivateCluster } from './support/private-cluster.js'
import { startTestSluice, waitForReplication, type TestSluice } from './support/sluice.js'
import { waitFor } from './support/wait.js'

const NO_STANDBY = 'sluice_test_no_standby'

let sluice: TestSluice

beforeAll(async () => {
  const cluster = await startPrivateCluster()
  const admin = new pg.Client({ connectionString: cluster.url })
  await admin.connect()
  // Only a session that asks for it (`SET LOCAL synchronous_commit = on`) waits for the standby.
  await admin.query(`ALTER SYSTEM SET synchronous_commit = 'local'`)
  await admin.query(`ALTER SYSTEM SET synchronous_standby_names = '${NO_STANDBY}'`)
  await admin.query('SELECT pg_reload_conf()')
  await admin.end()
  sluice = await startTestSluice({ maxConcurrentSnapshots: 1 }, databaseOf(cluster))
  await waitFor(async () => {
    const { rows } = await sluice.db.pool.query<{ names: string }>(`SELECT current_setting('synchronous_standby_names') AS names`)
    expect(rows[0]!.names).toBe(NO_STANDBY)
  })
  await sluice.db.pool.query(`CREATE TABLE items (id int PRIMARY KEY, v text NOT NULL)`)
  await sluice.db.pool.query(`CREATE TABLE blocker (id int PRIMARY KEY)`)
  await sluice.db.pool.query(`INSERT INTO items VALUES (1, 'a'), (2, 'b'), (3, 'c')`)
  // The tables join the publication now: those ALTERs must not wait for the standby later.
  for (const table of ['items', 'blocker']) await new Follower(() => sluice.shapeUrl(), { table }).catchUp()
})

afterAll(async () => {
  await sluice?.close()
})

/** A transaction committed in the WAL that PostgreSQL shows as running until `release`. */
async function commitHeldBeforeVisible(sql: string): Promise<{ release(): Promise<void> }> {
  const client = new pg.Client({ connectionString: sluice.db.url })
  await client.connect()
  // The cancelled wait for the standby ends in a WARNING: the transaction did commit.
  client.on('notice', () => undefined)
  const { rows } = await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')
  const pid = rows[0]!.pid
  await client.query('BEGIN')
  await client.query('SET LOCAL synchronous_commit = on')
  await client.query(sql)
  const committed = client.query('COMMIT')
  await waitFor(async () => {
    const activity = await sluice.db.pool.query<{ wait_event: string | null }>('SELECT wait_event FROM pg_stat_activity WHERE pid = $1', [pid])
    expect(activity.rows[0]?.wait_event).toBe('SyncRep')
  })
  return {
    async release() {
      await sluice.db.pool.query('SELECT pg_cancel_backend($1)', [pid])
      await committed
      await client.end()
    },
  }
}

async function snapshotsRetaken(): Promise<number> {
  const text = await (await fetch(`${sluice.server.url}/metrics`)).text()
  return Number(/^sluice_snapshots_retaken_total (\d+)$/m.exec(text)?.[1] ?? 0)
}

async function tableRows(): Promise<Record<string, string>[]> {
  const { rows } = await sluice.db.pool.query<Record<string, string>>(`SELECT id::text, v FROM items ORDER BY id`)
  return rows
}

/** `catchUp` as a promise that never rejects, so a test can wait on other things meanwhile. */
function catchingUp(follower: Follower): { readonly done: Promise<unknown>; settled: boolean } {
  const state = { done: Promise.resolve() as Promise<unknown>, settled: false }
  state.done = follower.catchUp().then(
    () => 'caught up',
    (error: unknown) => error,
  ).finally(() => (state.settled = true))
  return state
}

describe('a commit replicated before PostgreSQL shows it to snapshots', () => {
  it('is in the snapshot of a shape created meanwhile: the snapshot is taken again once it is visible', async () => {
    const held = await commitHeldBeforeVisible(`INSERT INTO items VALUES (4, 'held')`)
    // Sluice has handed the commit on before the new shape exists.
    await waitForReplication(sluice)
    const follower = new Follower(() => sluice.shapeUrl(), { table: 'items', replica: 'full' })
    const caughtUp = catchingUp(follower)
    await waitFor(async () => caughtUp.settled || expect(await snapshotsRetaken()).toBeGreaterThan(0), 30_000)
    await held.release()
    expect(await caughtUp.done).toBe('caught up')

    await sluice.db.pool.query(`DELETE FROM items WHERE id = 4`)
    await waitForReplication(sluice)
    await follower.catchUp()
    expect(follower.sortedRows()).toEqual(await tableRows())
  })

  it('does not make a shape append transactions its snapshot holds', async () => {
    // The only snapshot slot waits for this lock (its LOCK TABLE, before the snapshot is taken), so
    // the next shape is routed to before its snapshot.
    const locker = await sluice.db.pool.connect()
    await locker.query('BEGIN')
    await locker.query('LOCK TABLE blocker IN ACCESS EXCLUSIVE MODE')
    const blocked = catchingUp(new Follower(() => sluice.shapeUrl(), { table: 'blocker', replica: 'full' }))
    await waitFor(async () => {
      const { rows } = await sluice.db.pool.query(`SELECT 1 FROM pg_stat_activity WHERE query LIKE '%LOCK TABLE%blocker%' AND wait_event_type = 'Lock'`)
      expect(rows).toHaveLength(1)
    })
    const shapes = sluice.server.manager.size
    const follower = new Follower(() => sluice.shapeUrl(), { table: 'items', where: 'id < 100' })
    const caughtUp = catchingUp(follower)
    await waitFor(() => expect(sluice.server.manager.size).toBe(shapes + 1))

    // The delete gets the older xid and commits second; the insert commits first but stays
    // running. The snapshot then sees the delete and not the insert, whose xid is past its xmax.
    const deleter = await sluice.db.pool.connect()
    await deleter.query('BEGIN')
    await deleter.query('DELETE FROM items WHERE id = 1')
    const held = await commitHeldBeforeVisible(`INSERT INTO items VALUES (5, 'held')`)
    await deleter.query('COMMIT')
    deleter.release()
    await waitForReplication(sluice)

    await locker.query('COMMIT')
    locker.release()
    expect(await blocked.done).toBe('caught up')
    expect(await caughtUp.done).toBe('caught up')
    await held.release()
    await waitForReplication(sluice)
    await follower.catchUp()
    expect(follower.sortedRows()).toEqual(await tableRows())
  })
})
