/**
 * `npm run bench [-- <scenario>...]`: starts one embedded PostgreSQL, runs the scenarios (all of
 * them by default), prints each figure beside its same-run baseline, and writes BENCHMARKS.md
 * and bench-results.json at the repository root. Never part of `npm test`.
 */
import { loadavg } from 'node:os'
import { fileURLToPath } from 'node:url'
import { runCachedBench } from './cached.js'
import { runCatchupBench } from './catchup.js'
import { runLargeTxBench } from './largetx.js'
import { runShapesBench } from './shapes.js'
import { runSnapshotBench } from './snapshot.js'
import { runSubqueryBench } from './subquery.js'
import { runThroughputBench } from './throughput.js'
import { runWaitersBench } from './waiters.js'
import { runWorkersBench } from './workers.js'
import { startBenchCluster, type BenchCluster } from './support/cluster.js'
import { adaptRoutingResult, runExternal, type ExternalScenario } from './support/external.js'
import { codeVersion, machineInfo, mergeWithPrevious, printRow, toResults, writeResults, type BenchRow } from './support/report.js'
import type { Scenario } from './support/scenario.js'
import { benchRows } from './support/timing.js'

const BUILT_IN: Record<string, Scenario> = {
  snapshot: runSnapshotBench,
  throughput: runThroughputBench,
  cached: runCachedBench,
  catchup: runCatchupBench,
  largetx: runLargeTxBench,
  shapes: runShapesBench,
  waiters: runWaitersBench,
  subquery: runSubqueryBench,
  workers: runWorkersBench,
}

const EXTERNAL: Record<string, ExternalScenario> = {
  latency: { scenario: 'latency', file: 'sse-latency.ts', exports: ['runSseLatencyBench', 'runLatencyBench', 'default'], pendingNote: 'pending: SSE latency bench (issue 5)' },
  fanout: { scenario: 'fanout', file: 'fanout.ts', exports: ['runFanoutBench'], pendingNote: 'pending: fan-out round bench (issue 17)' },
  connections: { scenario: 'connections', file: 'sse-memory.ts', exports: ['runSseMemoryBench', 'default'], pendingNote: 'pending: SSE memory bench (issue 5)' },
  routing: { scenario: 'routing', file: 'routing.ts', exports: ['runRoutingBench', 'default'], pendingNote: 'pending: routing bench (issue 3)', adapt: adaptRoutingResult },
}

const ORDER = ['snapshot', 'throughput', 'latency', 'fanout', 'cached', 'connections', 'catchup', 'largetx', 'routing', 'shapes', 'waiters', 'subquery', 'workers']

async function main(): Promise<void> {
  const asked = process.argv.slice(2).filter((a) => a !== '--')
  const unknown = asked.filter((a) => !ORDER.includes(a))
  if (unknown.length > 0) {
    process.stderr.write(`unknown scenario ${unknown.join(', ')}; choose from: ${ORDER.join(', ')}\n`)
    process.exit(2)
  }
  const scenarios = asked.length > 0 ? ORDER.filter((s) => asked.includes(s)) : ORDER
  const started = performance.now()
  const loadAtStart = loadavg()[0]
  process.stdout.write(`Sluice benchmarks: ${scenarios.join(', ')} (BENCH_ROWS=${benchRows().toLocaleString('en-US')})\n`)

  let cluster: BenchCluster | undefined
  const rows: BenchRow[] = []
  let postgres = 'not started'
  try {
    for (const name of scenarios) {
      process.stdout.write(`\n▶ ${name}\n`)
      const scenarioStart = performance.now()
      let measured: BenchRow[]
      try {
        const builtIn = BUILT_IN[name]
        if (builtIn) {
          if (!cluster) {
            cluster = await startBenchCluster()
            postgres = cluster.serverVersion
          }
          measured = await builtIn({ cluster })
        } else {
          measured = await runExternal(EXTERNAL[name]!)
        }
      } catch (error) {
        process.stdout.write(`  ! ${name} failed: ${(error as Error).stack ?? String(error)}\n`)
        measured = [{ scenario: name, measure: 'run', value: null, unit: '', note: `failed: ${(error as Error).message}` }]
      }
      const at = new Date().toISOString()
      for (const row of measured) {
        const stamped = { ...row, measuredAt: at }
        rows.push(stamped)
        printRow(stamped)
      }
      process.stdout.write(`  (${((performance.now() - scenarioStart) / 1000).toFixed(0)} s)\n`)
    }
  } finally {
    await cluster?.stop()
  }

  const root = fileURLToPath(new URL('..', import.meta.url))
  const machine = machineInfo(postgres, loadAtStart)
  const jsonPath = `${root}bench-results.json`
  const all = await mergeWithPrevious(jsonPath, machine, rows)
  const seconds = (performance.now() - started) / 1000
  await writeResults(jsonPath, `${root}BENCHMARKS.md`, toResults(machine, all, benchRows(), seconds, codeVersion(root)), ORDER)
  process.stdout.write(`\nWrote BENCHMARKS.md and bench-results.json (${seconds.toFixed(0)} s).\n`)
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(`bench failed: ${(error as Error).stack ?? String(error)}\n`)
    process.exit(1)
  },
)
