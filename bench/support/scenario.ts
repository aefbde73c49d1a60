/** What every scenario gets from the harness. */
import type { BenchCluster } from './cluster.js'
import type { BenchRow } from './report.js'

export interface ScenarioContext {
  readonly cluster: BenchCluster
}

export type Scenario = (ctx: ScenarioContext) => Promise<BenchRow[]>
