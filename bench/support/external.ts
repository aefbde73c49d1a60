/**
 * Scenarios built in their own files by other work (SSE latency and memory, routing): loaded
 * only when their file exists, and their results turned into rows whatever shape they take.
 */
import { existsSync } from 'node:fs'
import type { BenchRow, Goal } from './report.js'

export interface ExternalScenario {
  readonly scenario: string
  /** File under bench/. */
  readonly file: string
  /** Export names tried in order. */
  readonly exports: readonly string[]
  readonly pendingNote: string
  /** Turns a result that is not already rows into rows; undefined falls back to the generic reading. */
  readonly adapt?: (result: unknown) => BenchRow[] | undefined
}

/** Runs the scenario's exported function, or returns one "pending" row when it is not there yet. */
export async function runExternal(spec: ExternalScenario): Promise<BenchRow[]> {
  const url = new URL(`../${spec.file}`, import.meta.url)
  if (!existsSync(url)) return [{ scenario: spec.scenario, measure: `bench/${spec.file}`, value: null, unit: '', note: spec.pendingNote }]
  const module = (await import(url.href)) as Record<string, unknown>
  const name = spec.exports.find((n) => typeof module[n] === 'function')
  if (!name) throw new Error(`bench/${spec.file} exports none of ${spec.exports.join(', ')}`)
  const result: unknown = await (module[name] as () => Promise<unknown>)()
  return spec.adapt?.(result) ?? toRows(spec.scenario, result)
}

function toRows(scenario: string, result: unknown): BenchRow[] {
  const items = Array.isArray(result) ? result : isRecord(result) && Array.isArray(result['rows']) ? result['rows'] : [result]
  return items.map((item: unknown) => toRow(scenario, item))
}

function toRow(scenario: string, item: unknown): BenchRow {
  if (!isRecord(item)) return { scenario, measure: 'result', value: null, unit: '', note: JSON.stringify(item) }
  if (!('value' in item)) {
    // A plain record of figures: one line listing them.
    return { scenario, measure: 'result', value: null, unit: '', note: JSON.stringify(item) }
  }
  const value = typeof item['value'] === 'number' ? item['value'] : null
  const measure = firstString(item, ['measure', 'metric', 'name', 'label']) ?? 'result'
  const row: BenchRow = { scenario: firstString(item, ['scenario']) ?? scenario, measure, value, unit: firstString(item, ['unit']) ?? '' }
  const baseline = item['baseline']
  const goal = item['goal']
  const note = firstString(item, ['note']) ?? (value === null ? JSON.stringify(item) : undefined)
  return {
    ...row,
    ...(isRecord(baseline) && typeof baseline['value'] === 'number'
      ? { baseline: { label: firstString(baseline, ['label', 'name']) ?? 'baseline', value: baseline['value'], unit: firstString(baseline, ['unit']) ?? row.unit } }
      : {}),
    ...(isGoal(goal) ? { goal } : {}),
    ...(note !== undefined ? { note } : {}),
  }
}

/** `runRoutingBench()`: per-change routing cost with 10,000 shapes against 10 (goal under 2×). */
export function adaptRoutingResult(result: unknown): BenchRow[] | undefined {
  if (!isRecord(result)) return undefined
  const { perChangeNs10, perChangeNs10000, spreadRatio, scannedRatio } = result
  if (typeof perChangeNs10 !== 'number' || typeof perChangeNs10000 !== 'number') return undefined
  const extra = [
    typeof spreadRatio === 'number' ? `spread over 100 shapes per transaction: ${spreadRatio.toFixed(2)}×` : undefined,
    typeof scannedRatio === 'number' ? `10,000 unindexed shapes: ${scannedRatio.toFixed(2)}×` : undefined,
  ].filter((s) => s !== undefined)
  return [
    {
      scenario: 'routing',
      measure: 'router cost per change, 10,000 equality shapes (in-process, storage stubbed)',
      value: perChangeNs10000,
      unit: 'ns',
      baseline: { label: '10 shapes', value: perChangeNs10, unit: 'ns' },
      goal: { on: 'ratio', op: '<=', target: 2 },
      ...(extra.length > 0 ? { note: extra.join('; ') } : {}),
    },
  ]
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null
}

function isGoal(value: unknown): value is Goal {
  return isRecord(value) && (value['on'] === 'ratio' || value['on'] === 'value') && (value['op'] === '<=' || value['op'] === '>=') && typeof value['target'] === 'number'
}

function firstString(record: Record<string, unknown>, keys: readonly string[]): string | undefined {
  for (const key of keys) if (typeof record[key] === 'string') return record[key]
  return undefined
}
