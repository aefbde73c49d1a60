/**
 * snapshot: a new client reads every chunk of a large shape over HTTP (keep-alive, one request
 * after another), against `COPY (rows as JSON) TO STDOUT` of the same rows. "Cold" includes
 * creating the shape (Sluice's own snapshot query into storage); "warm" re-reads the stored log.
 */
import type { BenchRow } from './support/report.js'
import type { ScenarioContext } from './support/scenario.js'
import { followToUpToDate } from './support/chunk-follower.js'
import { copyOut, createItemsTable, insertItems, jsonRowsSql } from './support/table.js'
import { startBenchSluice } from './support/sluice.js'
import { benchRows, formatCount, progress, timed } from './support/timing.js'

export async function runSnapshotBench(ctx: ScenarioContext): Promise<BenchRow[]> {
  const rows = benchRows()
  const db = await ctx.cluster.createDatabase('bench_snapshot')
  try {
    await createItemsTable(db.pool)
    progress(`loading ${formatCount(rows)} rows`)
    for (let from = 1; from <= rows; from += 250_000) await insertItems(db.pool, from, Math.min(rows, from + 249_999))
    await db.pool.query('VACUUM (ANALYZE) items')

    const copy = () => copyOut(db.url, jsonRowsSql())
    progress('baseline: COPY (warm-up)')
    await copy()
    const baseline1 = await timed(copy)
    progress(`baseline: COPY ${(baseline1.value / 1e6).toFixed(0)} MB in ${(baseline1.ms / 1000).toFixed(2)} s`)

    const sluice = await startBenchSluice(db)
    try {
      const params = { table: 'items' }
      progress('Sluice: new shape, every chunk (cold)')
      const cold = await timed(() => followToUpToDate(sluice.shapeUrl(), params))
      progress(`Sluice cold: ${cold.value.requests} requests, ${(cold.value.bytes / 1e6).toFixed(0)} MB in ${(cold.ms / 1000).toFixed(2)} s`)
      const warm = await timed(() => followToUpToDate(sluice.shapeUrl(), params, { offset: '-1', handle: cold.value.handle }))
      progress(`Sluice warm: ${warm.value.requests} requests in ${(warm.ms / 1000).toFixed(2)} s`)
      const baseline2 = await timed(copy)
      const baselineSeconds = Math.min(baseline1.ms, baseline2.ms) / 1000
      const baseline = { label: 'COPY JSON TO STDOUT', value: baselineSeconds, unit: 's' }
      const goal = { on: 'ratio', op: '<=', target: 1.5 } as const
      const n = formatCount(rows)
      return [
        {
          scenario: 'snapshot',
          measure: `new client reads all chunks of a ${n}-row shape (cold: includes Sluice's snapshot)`,
          value: cold.ms / 1000,
          unit: 's',
          baseline,
          goal,
          note: `${cold.value.requests} requests, ${(cold.value.bytes / 1e6).toFixed(0)} MB vs COPY ${(baseline1.value / 1e6).toFixed(0)} MB`,
        },
        { scenario: 'snapshot', measure: `re-read all chunks of the stored ${n}-row shape (warm)`, value: warm.ms / 1000, unit: 's', baseline, goal },
      ]
    } finally {
      await sluice.close()
    }
  } finally {
    await db.drop()
  }
}
