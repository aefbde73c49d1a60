/**
 * catchup: a client that was up to date falls 100,000 changes behind, then reads chunks until
 * it is up to date again, against `COPY` of the same rows as JSON.
 */
import pg from 'pg'
import { followToUpToDate } from './support/chunk-follower.js'
import type { BenchRow } from './support/report.js'
import type { ScenarioContext } from './support/scenario.js'
import { startBenchSluice } from './support/sluice.js'
import { copyOut, createItemsTable, insertItems, jsonRowsSql } from './support/table.js'
import { currentWalLsn, formatCount, progress, scaled, timed, waitForDurable } from './support/timing.js'

const ROWS_PER_TRANSACTION = 1_000

export async function runCatchupBench(ctx: ScenarioContext): Promise<BenchRow[]> {
  const changes = scaled(100_000, 5_000)
  const db = await ctx.cluster.createDatabase('bench_catchup')
  await createItemsTable(db.pool)
  await insertItems(db.pool, 1, changes)
  const sluice = await startBenchSluice(db)
  try {
    const params = { table: 'items' }
    const upToDate = await followToUpToDate(sluice.shapeUrl(), params)
    progress(`client up to date; committing ${formatCount(changes)} updates in ${ROWS_PER_TRANSACTION}-row transactions`)
    const client = new pg.Client({ connectionString: db.url })
    await client.connect()
    for (let from = 1; from <= changes; from += ROWS_PER_TRANSACTION) {
      await client.query(`UPDATE items SET amount = amount + 1, title = title || '!' WHERE id BETWEEN $1 AND $2`, [from, from + ROWS_PER_TRANSACTION - 1])
    }
    await client.end()
    await waitForDurable(sluice.server, await currentWalLsn(db.pool), 300_000)
    await db.pool.query('VACUUM (ANALYZE) items')

    const copy = () => copyOut(db.url, jsonRowsSql('items', `id <= ${changes}`))
    await copy()
    const baseline1 = await timed(copy)
    const behind = await timed(() => followToUpToDate(sluice.shapeUrl(), params, { offset: upToDate.offset, handle: upToDate.handle }))
    const baseline2 = await timed(copy)
    progress(`caught up with ${behind.value.requests} requests, ${(behind.value.bytes / 1e6).toFixed(1)} MB in ${(behind.ms / 1000).toFixed(2)} s`)
    return [
      {
        scenario: 'catchup',
        measure: `client ${formatCount(changes)} changes behind reaches up-to-date`,
        value: behind.ms / 1000,
        unit: 's',
        baseline: { label: 'COPY of the same rows as JSON', value: Math.min(baseline1.ms, baseline2.ms) / 1000, unit: 's' },
        goal: { on: 'ratio', op: '<=', target: 2 },
        note: `${behind.value.requests} requests, ${(behind.value.bytes / 1e6).toFixed(1)} MB vs COPY ${(baseline1.value / 1e6).toFixed(1)} MB`,
      },
    ]
  } finally {
    await sluice.close()
    await db.drop()
  }
}
