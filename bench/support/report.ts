/**
 * Result rows, how they print, and the two files a run writes: `BENCHMARKS.md` for people and
 * `bench-results.json` for tools. Every figure stands beside a baseline measured in the same
 * run; the ratio is Sluice's figure divided by the baseline's, and the goal is a bound on it.
 */
import { execFileSync } from 'node:child_process'
import { readFile, writeFile } from 'node:fs/promises'
import { cpus, loadavg, totalmem, release } from 'node:os'

/** A figure as printed: two decimals. */
export const round2 = (n: number): number => Math.round(n * 100) / 100

export interface Goal {
  /** What the bound is on: the ratio to the baseline, or the figure itself. */
  readonly on: 'ratio' | 'value'
  readonly op: '<=' | '>='
  readonly target: number
}

export interface Baseline {
  readonly label: string
  readonly value: number
  readonly unit: string
}

export interface BenchRow {
  readonly scenario: string
  readonly measure: string
  /** Sluice's figure; null when the scenario cannot run yet. */
  readonly value: number | null
  readonly unit: string
  readonly baseline?: Baseline
  readonly goal?: Goal
  readonly note?: string
  /** ISO time the row was measured. */
  readonly measuredAt?: string
}

export interface Machine {
  readonly cpus: number
  readonly model: string
  readonly memoryGiB: number
  readonly node: string
  readonly postgres: string
  readonly kernel: string
  /** 1-minute load average when the run started: other work on a shared machine shows here. */
  readonly loadAverage?: number
}

export interface BenchResults {
  readonly machine: Machine
  readonly date: string
  readonly benchRows: number
  readonly durationSeconds: number
  /** The commit measured, with a mark when src/ had uncommitted changes. */
  readonly code?: string
  readonly rows: readonly (BenchRow & { ratio: number | null; met: boolean | null })[]
}

/** Call at the start of a run; the load average is then the machine's load before the bench. */
export function machineInfo(postgres: string, loadAverage = loadavg()[0]): Machine {
  const list = cpus()
  return {
    cpus: list.length,
    model: list[0]?.model.trim() ?? 'unknown',
    memoryGiB: Math.round((totalmem() / 1024 ** 3) * 10) / 10,
    node: process.version,
    postgres,
    kernel: release(),
    ...(loadAverage !== undefined ? { loadAverage: Math.round(loadAverage * 100) / 100 } : {}),
  }
}

export function ratioOf(row: BenchRow): number | null {
  if (row.value === null || !row.baseline || row.baseline.value === 0) return null
  return row.value / row.baseline.value
}

export function metOf(row: BenchRow): boolean | null {
  if (!row.goal || row.value === null) return null
  const subject = row.goal.on === 'ratio' ? ratioOf(row) : row.value
  if (subject === null) return null
  return row.goal.op === '<=' ? subject <= row.goal.target : subject >= row.goal.target
}

export function goalText(row: BenchRow): string {
  if (!row.goal) return '—'
  const op = row.goal.op === '<=' ? '≤' : '≥'
  return row.goal.on === 'ratio' ? `${op} ${row.goal.target}×` : `${op} ${formatNumber(row.goal.target)} ${row.unit}`
}

export function formatNumber(n: number): string {
  if (Math.abs(n) >= 100) return Math.round(n).toLocaleString('en-US')
  if (Math.abs(n) >= 10) return n.toFixed(1)
  return n.toFixed(2)
}

function figure(value: number | null, unit: string): string {
  return value === null ? 'pending' : `${formatNumber(value)} ${unit}`
}

function verdict(met: boolean | null, row: BenchRow): string {
  if (row.value === null) return 'pending'
  if (met === null) return '—'
  return met ? 'met' : 'MISSED'
}

/** `git rev-parse --short HEAD`, marked when src/ differs from it; undefined outside a checkout. */
export function codeVersion(root: string): string | undefined {
  try {
    const git = (...args: string[]) => execFileSync('git', ['-C', root, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim()
    const head = git('rev-parse', '--short', 'HEAD')
    return git('status', '--porcelain', '--', 'src') === '' ? head : `${head} + uncommitted changes in src/`
  } catch {
    return undefined
  }
}

/** One line on the console as soon as a row is measured. */
export function printRow(row: BenchRow): void {
  const ratio = ratioOf(row)
  const parts = [`  ${row.scenario.padEnd(12)} ${row.measure}: ${figure(row.value, row.unit)}`]
  if (row.baseline) parts.push(`vs ${row.baseline.label} ${figure(row.baseline.value, row.baseline.unit)}`)
  if (ratio !== null) parts.push(`= ${ratio.toFixed(2)}×`)
  if (row.goal) parts.push(`(goal ${goalText(row)}: ${verdict(metOf(row), row)})`)
  if (row.note) parts.push(`— ${row.note}`)
  process.stdout.write(`${parts.join(' ')}\n`)
}

/** Keeps rows of scenarios this run did not measure, when the last run was on the same machine. */
export async function mergeWithPrevious(path: string, machine: Machine, rows: readonly BenchRow[]): Promise<BenchRow[]> {
  let previous: BenchResults | undefined
  try {
    previous = JSON.parse(await readFile(path, 'utf8')) as BenchResults
  } catch {
    return [...rows]
  }
  const same = previous.machine.cpus === machine.cpus && previous.machine.model === machine.model && previous.machine.node === machine.node
  if (!same) return [...rows]
  const ran = new Set(rows.map((r) => r.scenario))
  const kept = previous.rows.filter((r) => !ran.has(r.scenario)).map(({ ratio: _r, met: _m, ...row }) => row)
  return [...kept, ...rows]
}

export function toResults(machine: Machine, rows: readonly BenchRow[], benchRows: number, durationSeconds: number, code?: string): BenchResults {
  return {
    machine,
    date: new Date().toISOString(),
    benchRows,
    durationSeconds: Math.round(durationSeconds),
    ...(code !== undefined ? { code } : {}),
    rows: rows.map((row) => ({ ...row, ratio: ratioOf(row), met: metOf(row) })),
  }
}

export async function writeResults(jsonPath: string, markdownPath: string, results: BenchResults, order: readonly string[]): Promise<void> {
  const rank = (s: string) => (order.includes(s) ? order.indexOf(s) : order.length)
  const rows = [...results.rows].sort((a, b) => rank(a.scenario) - rank(b.scenario))
  await writeFile(jsonPath, `${JSON.stringify({ ...results, rows }, null, 2)}\n`)
  await writeFile(markdownPath, renderMarkdown({ ...results, rows }))
}

function renderMarkdown(results: BenchResults): string {
  const m = results.machine
  const cell = (s: string) => s.replace(/\|/g, '\\|')
  const lines = [
    '# Benchmarks',
    '',
    'Written by `npm run bench` (see README, "Benchmarks"). Every figure stands beside a baseline measured in the',
    'same run on the same machine, because these machines are shared and noisy: read the **ratio**, not the',
    'absolute numbers. A ratio is Sluice ÷ baseline — for times lower is better, for rates higher is better;',
    'the goal column bounds it. Rows marked *pending* wait for the issue named in their note.',
    '',
    '| machine | |',
    '|---|---|',
    `| CPUs | ${m.cpus} × ${cell(m.model)} |`,
    `| memory | ${m.memoryGiB} GiB |`,
    `| Node.js | ${m.node} |`,
    `| PostgreSQL | ${cell(m.postgres)} (embedded, loopback) |`,
    `| kernel | ${cell(m.kernel)} |`,
    ...(m.loadAverage !== undefined ? [`| load average at start | ${m.loadAverage} (1 min; other work on the machine) |`] : []),
    `| date | ${results.date.slice(0, 16).replace('T', ' ')} UTC |`,
    ...(results.code !== undefined ? [`| code | ${cell(results.code)} |`] : []),
    `| scale | BENCH_ROWS=${results.benchRows.toLocaleString('en-US')}, run took ${results.durationSeconds} s |`,
    '',
    '| scenario | measure | Sluice | baseline | ratio | goal | result |',
    '|---|---|---|---|---|---|---|',
  ]
  for (const row of results.rows) {
    const baseline = row.baseline ? `${row.baseline.label}: ${figure(row.baseline.value, row.baseline.unit)}` : '—'
    const ratio = row.ratio === null ? '—' : `${row.ratio.toFixed(2)}×`
    const note = row.note ? ` (${row.note})` : ''
    lines.push(
      `| ${row.scenario} | ${cell(row.measure + note)} | ${figure(row.value, row.unit)} | ${cell(baseline)} | ${ratio} | ${goalText(row)} | ${verdict(row.met, row)} |`,
    )
  }
  const dates = new Set(results.rows.map((r) => r.measuredAt?.slice(0, 10)).filter((d) => d !== undefined))
  if (dates.size > 1) lines.push('', `Rows come from runs on ${[...dates].sort().join(', ')} (a single scenario run keeps the others' rows).`)
  lines.push('')
  return lines.join('\n')
}
