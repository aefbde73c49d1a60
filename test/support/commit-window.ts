/**
 * Widens on purpose the interval in which a committed transaction is already in the WAL (and
 * replicated) but still running for new snapshots: gdb stops a backend at each
 * `ProcArrayEndTransaction` for a random time up to `SLUICE_TEST_COMMIT_WINDOW_MS`. On a starved
 * CPU the interval is microseconds to milliseconds; this is how the rare consistency failure of
 * #14 was reproduced (about half the runs of consistency.pg.test.ts failed before its fix).
 * Off unless the variable is set; needs gdb and the right to ptrace the backends (root).
 */
import { spawn } from 'node:child_process'
import { readFile, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type pg from 'pg'

const windowMs = Number(process.env['SLUICE_TEST_COMMIT_WINDOW_MS'] ?? 0)

export const commitWindowWidened = windowMs > 0

const GDB_SCRIPT = `
import gdb, random, time
class Pause(gdb.Breakpoint):
    def stop(self):
        time.sleep(random.random() * ${windowMs / 1000})
        return False
gdb.execute('set pagination off')
for signal in ['SIGUSR1', 'SIGUSR2', 'SIGINT', 'SIGTERM', 'SIGALRM', 'SIGPIPE', 'SIGHUP', 'SIGQUIT', 'SIGURG']:
    gdb.execute('handle %s nostop noprint pass' % signal)
Pause('ProcArrayEndTransaction')
gdb.execute('continue')
`

/** Resolves once the client's backend runs under gdb (at once when the window is not widened). */
export async function widenCommitWindow(client: pg.ClientBase): Promise<void> {
  if (!commitWindowWidened) return
  const { rows } = await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')
  const pid = rows[0]!.pid
  const script = join(tmpdir(), `sluice-commit-window-${process.pid}.py`)
  await writeFile(script, GDB_SCRIPT)
  // gdb leaves with the backend; killing it first would leave its breakpoint in a running process.
  spawn('gdb', ['-q', '-batch', '-p', String(pid), '-x', script], { stdio: 'ignore', detached: true }).unref()
  for (;;) {
    const status = await readFile(`/proc/${pid}/status`, 'utf8')
    if (!/^TracerPid:\s+0$/m.test(status) && !/^State:\s+t/m.test(status)) return
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}
