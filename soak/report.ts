/**
 * RELIABILITY.md: what a soak run held, what it did to Sluice, what it checked and what it
 * found, in figures.
 */
import { VIOLATION } from './checker.js'
import type { SoakResult } from './soak.js'

export function renderReport(result: SoakResult, context: { commit: string; machine: string }): string {
  const { options, history, checker, supervisor } = result
  const seconds = result.ranMs / 1000
  const lines: string[] = []
  const add = (...more: string[]) => lines.push(...more)
  add(
    '# Reliability: soak results',
    '',
    `Written by \`npm run soak\` (soak/run.ts). Replay this run with \`SOAK_SEED=${options.seed} SOAK_MINUTES=${minutes(options.durationMs)} SLUICE_WORKERS=${options.workers} npm run soak\`.`,
    'The seed fixes the workload decisions and the fault schedule; timings still vary on a shared machine.',
    '',
    `- seed **${options.seed}**, ${options.workers === 1 ? 'one process' : `${options.workers} HTTP workers`}, ${seconds.toFixed(0)} s (${minutes(options.durationMs)} min of faults, then healing and the final check), ${new Date().toISOString()}`,
    `- code ${context.commit}; ${context.machine}`,
    `- **violations: ${checker.violations.length}** (goal 0)`,
    '',
    '## Load held',
    '',
    `- ${history.clock.toLocaleString('en-US')} committed writer transactions, ${(history.clock / seconds).toFixed(1)} tx/s; ${history.rowChanges.toLocaleString('en-US')} row changes (${(history.rowChanges / seconds).toFixed(0)}/s)`,
    `- by kind: ${[...history.kinds].map(([kind, n]) => `${kind} ${n}`).join(', ')}; large transactions have ${options.scale.largeRows.toLocaleString('en-US')} rows`,
    `- writer transactions that failed (PostgreSQL down, lock timeouts): ${result.writersFailed}`,
    `- ${result.followers.length} clients at once: ${countBy(result.followers.map((f) => f.kind))}`,
    `- ${result.clientErrors.requests.toLocaleString('en-US')} client requests`,
    '',
    '## Faults injected',
    '',
    '| fault | times | recovery median | recovery max | notes |',
    '|---|---|---|---|---|',
  )
  for (const kind of result.faultKinds) {
    const records = result.faults.filter((f) => f.fault === kind)
    const times = records.map((f) => f.recoveryMs).filter((ms): ms is number => ms !== undefined).sort((a, b) => a - b)
    const notes = [...new Set(records.map((f) => f.note).filter(Boolean))].slice(0, 3).join('; ')
    add(`| ${kind} | ${records.length} | ${ms(times[Math.floor(times.length / 2)])} | ${ms(times.at(-1))} | ${notes} |`)
  }
  if (result.diskNote) add('', `Disk full was not injected: ${result.diskNote}.`)
  add(
    '',
    'Recovery: from the moment the fault is healed (Sluice killed, PostgreSQL started again, stall over, space freed…)',
    'until a write committed at that moment is in the rows of a plain HTTP follower of `accounts`.',
    '',
    '## Invariant checks',
    '',
    `- ${checker.checks.toLocaleString('en-US')} up-to-date states checked against the history at their cut (${checker.rowsCompared.toLocaleString('en-US')} rows compared); ${checker.skipped} skipped (no snapshot seen by that client)`,
    `- ${checker.finalChecks} of ${result.followers.length} followers reached the final state of their shape after the faults stopped`,
    '- at each up-to-date: rows equal the history (commit order from a clock row, row versions from triggers) at the last transaction applied plus what the snapshot saw; offsets strictly increase within a handle (no duplicate); no update or delete of a missing row (no gap)',
    '',
    '## Violations',
    '',
  )
  if (checker.violations.length === 0) add('None.')
  for (const v of checker.violations.slice(0, 30)) {
    add(`- ${(v.atMs / 1000).toFixed(1)} s, **${VIOLATION[v.kind]}**: ${v.follower}, ${v.shape}, at ${v.offset || '-'} (clock ${v.clock ?? '-'}): ${v.detail}`)
  }
  if (checker.violations.length > 30) add(`- … and ${checker.violations.length - 30} more`)
  add(
    '',
    '## Client-visible errors',
    '',
    '| status | count |',
    '|---|---|',
    ...[...result.clientErrors.byStatus].sort().map(([status, n]) => `| ${status} | ${n} |`),
    '',
    '## Sluice exits',
    '',
    `- ${countBy(supervisor.exits.map((e) => e.cause)) || 'none'}; ${supervisor.failedStarts} failed starts (the supervisor retries every 0.5 s)`,
    ...supervisor.exits.filter((e) => e.cause === 'unexpected').map((e) => `- unexpected exit at ${(e.atMs / 1000).toFixed(1)} s (code ${e.code}, signal ${e.signal}): \`${e.tail.split('\n').filter(Boolean).slice(-2).join(' ').slice(0, 400)}\``),
    '',
    '## Resources',
    '',
    'Sluice\'s RSS and open file descriptors, sampled every second. Slopes are least-squares lines per process lifetime (each restart starts afresh) after its first 30 s (catching up), for lifetimes of a minute or more past that.',
    '',
    '| process lifetime | RSS max | RSS slope | fds max | fds slope |',
    '|---|---|---|---|---|',
  )
  for (const life of result.resources.lifetimes(60_000, 30_000).sort((a, b) => b.ms - a.ms).slice(0, 8)) {
    add(`| ${(life.ms / 1000).toFixed(0)} s | ${life.rssMbMax.toFixed(0)} MB | ${life.rssMbPerMin.toFixed(1)} MB/min | ${life.fdsMax} | ${life.fdsPerMin.toFixed(1)}/min |`)
  }
  add('', `History reads that failed (PostgreSQL down): ${result.historyReadFailures}.`, '')
  return lines.join('\n')
}

export function summary(result: SoakResult): string {
  const faults = countBy(result.faults.map((f) => f.fault))
  return `seed ${result.options.seed}: ${result.history.clock} transactions, ${result.checker.checks} checks, ${result.checker.violations.length} violations; faults: ${faults}`
}

function countBy(items: readonly string[]): string {
  const counts = new Map<string, number>()
  for (const item of items) counts.set(item, (counts.get(item) ?? 0) + 1)
  return [...counts].map(([item, n]) => `${n} × ${item}`).join(', ')
}

function ms(value: number | undefined): string {
  return value === undefined ? '-' : `${(value / 1000).toFixed(1)} s`
}

function minutes(ms: number): string {
  return String(Math.round((ms / 60_000) * 100) / 100)
}

