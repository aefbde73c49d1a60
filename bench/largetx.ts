/**
 * largetx: one transaction of 1,000,000 inserts on a table with a shape, replicated by a Sluice
 * running in its own process. The figure is that process's peak resident memory (VmHWM),
 * from start until the transaction is durable and acknowledged.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { freePort } from '../src/pg/free-port.js'
import { followToUpToDate } from './support/chunk-follower.js'
import type { BenchRow } from './support/report.js'
import type { ScenarioContext } from './support/scenario.js'
import { createItemsTable, insertItems } from './support/table.js'
import { currentWalLsn, formatCount, progress, scaled, sleep, waitUntil } from './support/timing.js'

const SLOT = 'sluice_bench_largetx'
const MB = 1024 * 1024

export async function runLargeTxBench(ctx: ScenarioContext): Promise<BenchRow[]> {
  const rows = scaled(1_000_000, 10_000)
  const db = await ctx.cluster.createDatabase('bench_largetx')
  await createItemsTable(db.pool)
  const dataDir = await mkdtemp(join(tmpdir(), 'sluice-bench-largetx-'))
  const port = await freePort()
  const root = fileURLToPath(new URL('..', import.meta.url))
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
    cwd: root,
    env: { ...process.env, DATABASE_URL: db.url, PORT: String(port), HOST: '127.0.0.1', SLUICE_DATA_DIR: dataDir, SLUICE_REPLICATION_SLOT: SLOT, SLUICE_PUBLICATION: SLOT, SLUICE_WORKERS: '1', LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'ignore', 'pipe'],
  })
  let stderr = ''
  child.stderr!.on('data', (part: Buffer) => (stderr = (stderr + part.toString()).slice(-4000)))
  let exit: string | undefined
  child.on('exit', (code, signal) => (exit = `exited (${signal ?? code})`))
  try {
    const base = `http://127.0.0.1:${port}`
    await waitUntil('Sluice to serve', async () => {
      if (exit) throw new Error(`Sluice ${exit}: ${stderr}`)
      return fetch(`${base}/v1/health`).then((r) => r.ok, () => false)
    }, 60_000, 100)
    await followToUpToDate(`${base}/v1/shape`, { table: 'items' })
    const idle = await memory(child.pid!)
    progress(`Sluice (pid ${child.pid}) idle at ${(idle.rss / MB).toFixed(0)} MB; committing one ${formatCount(rows)}-row transaction`)

    const started = performance.now()
    await insertItems(db.pool, 1, rows)
    const target = await currentWalLsn(db.pool)
    let peak = idle.hwm
    const acknowledged = async () => {
      if (exit) return true
      peak = Math.max(peak, (await memory(child.pid!)).hwm)
      const { rows: slot } = await db.pool.query<{ flushed: string | null }>(
        `SELECT (confirmed_flush_lsn - '0/0')::text AS flushed FROM pg_replication_slots WHERE slot_name = $1`,
        [SLOT],
      )
      return slot[0]?.flushed != null && BigInt(slot[0].flushed) + 1n >= target
    }
    await waitUntil('the transaction to be acknowledged', acknowledged, 600_000, 200)
    const seconds = (performance.now() - started) / 1000
    if (!exit) peak = Math.max(peak, (await memory(child.pid!)).hwm)
    progress(exit ? `Sluice ${exit} after ${seconds.toFixed(1)} s` : `durable and acknowledged after ${seconds.toFixed(1)} s`)
    return [
      {
        scenario: 'largetx',
        measure: `peak RSS of the Sluice process through one ${formatCount(rows)}-row transaction`,
        value: peak / MB,
        unit: 'MB',
        goal: { on: 'value', op: '<=', target: 300 },
        note: exit
          ? `Sluice ${exit} before the transaction was durable: ${lastLine(stderr)}`
          : `idle ${(idle.rss / MB).toFixed(0)} MB before (tsx loader included); durable after ${seconds.toFixed(1)} s`,
      },
    ]
  } finally {
    await stop(child)
    await rm(dataDir, { recursive: true, force: true })
    await db.drop()
  }
}

/** Current and peak resident set of a process, in bytes, from /proc/<pid>/status. */
async function memory(pid: number): Promise<{ rss: number; hwm: number }> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '')
  const kb = (field: string) => Number(new RegExp(`^${field}:\\s+([0-9]+) kB`, 'm').exec(status)?.[1] ?? 0) * 1024
  return { rss: kb('VmRSS'), hwm: kb('VmHWM') }
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = new Promise((resolve) => child.once('exit', resolve))
  child.kill('SIGTERM')
  const timeout = sleep(15_000).then(() => 'timeout')
  if ((await Promise.race([exited, timeout])) === 'timeout') {
    child.kill('SIGKILL')
    await exited
  }
}

function lastLine(text: string): string {
  return text.trim().split('\n').at(-1)?.slice(0, 200) ?? ''
}
