/**
 * `npm run soak`: a fault-injecting soak of SOAK_MINUTES (default 10) with a seed from SOAK_SEED
 * (default: a random one, printed), then RELIABILITY.md at the repository root. Exits 1 when
 * the checker found a violation. Never part of `npm test` (the short soak in
 * test/soak.pg.test.ts is).
 */
import { execFileSync } from 'node:child_process'
import { writeFile } from 'node:fs/promises'
import { cpus, loadavg } from 'node:os'
import { fileURLToPath } from 'node:url'
import { randomSeed } from './random.js'
import { renderReport, summary } from './report.js'
import { FAULT, type Fault } from './faults.js'
import { FULL, SHORT } from './scale.js'
import { runSoak } from './soak.js'

async function main(): Promise<void> {
  const minutes = Number(process.env['SOAK_MINUTES'] ?? '10')
  const seed = process.env['SOAK_SEED'] ? Number(process.env['SOAK_SEED']) : randomSeed()
  if (!(minutes > 0) || !Number.isInteger(seed)) throw new Error('SOAK_MINUTES must be a positive number and SOAK_SEED an integer')
  // SOAK_SCALE=short: the clients, sizes and fault pace of the CI soak.
  const scale = process.env['SOAK_SCALE'] === 'short' ? SHORT : FULL
  const largeRows = process.env['SOAK_LARGE_ROWS'] ? Number(process.env['SOAK_LARGE_ROWS']) : scale.largeRows
  // SLUICE_WORKERS=2: the owner and two HTTP workers, with the kill-worker fault; one process otherwise.
  const workers = Number(process.env['SLUICE_WORKERS'] ?? '1')
  if (!Number.isInteger(workers) || workers < 1) throw new Error('SLUICE_WORKERS must be a positive integer for the soak')
  const faults = faultsFrom(process.env['SOAK_FAULTS'])
  process.stdout.write(`Sluice soak: ${minutes} min, seed ${seed}, ${workers} HTTP worker(s) (replay: SOAK_SEED=${seed} SOAK_MINUTES=${minutes} SLUICE_WORKERS=${workers}${faults ? ` SOAK_FAULTS=${process.env['SOAK_FAULTS']}` : ''} npm run soak)\n`)
  const root = fileURLToPath(new URL('..', import.meta.url))
  const loadAtStart = loadavg()[0]!.toFixed(1)
  const result = await runSoak({
    seed,
    durationMs: minutes * 60_000,
    scale: { ...scale, largeRows },
    workers,
    ...(faults ? { faults } : {}),
    log: (line) => process.stdout.write(`  ${line}\n`),
  })
  const commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: root, encoding: 'utf8' }).trim()
  const machine = `${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, load ${loadAtStart} at start`
  await writeFile(`${root}RELIABILITY.md`, renderReport(result, { commit, machine }))
  process.stdout.write(`${summary(result)}\nWrote RELIABILITY.md.\n`)
  for (const violation of result.checker.violations.slice(0, 10)) process.stdout.write(`  VIOLATION ${violation.kind}: ${violation.follower} at ${violation.offset}: ${violation.detail}\n`)
  process.exitCode = result.checker.violations.length === 0 ? 0 : 1
}

/** SOAK_FAULTS: fault kinds by their key in `FAULT` (soak/faults.ts), comma-separated. */
function faultsFrom(text: string | undefined): Fault[] | undefined {
  if (!text) return undefined
  const keys = text.split(',').map((key) => key.trim())
  const unknown = keys.filter((key) => !Object.hasOwn(FAULT, key))
  if (unknown.length > 0) throw new Error(`SOAK_FAULTS: unknown fault ${unknown.join(', ')}; known: ${Object.keys(FAULT).join(', ')}`)
  return keys.map((key) => FAULT[key as keyof typeof FAULT])
}

main().then(
  () => process.exit(),
  (error: unknown) => {
    process.stderr.write(`soak failed: ${(error as Error).stack ?? String(error)}\n`)
    process.exit(2)
  },
)
