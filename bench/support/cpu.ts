/** CPU time of processes and of the machine, from /proc (Linux), for benches that split a run's CPU. */
import { readdir, readFile } from 'node:fs/promises'

/** Fields of /proc/<pid>/stat after the command name (field 3 is at index 0). */
async function statFields(pid: number): Promise<string[]> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '')
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')
}

/** CPU time (user + system) of a process so far, in ms, from /proc/<pid>/stat. */
export async function cpuOfPid(pid: number): Promise<number> {
  const fields = await statFields(pid)
  // utime and stime are fields 14 and 15, in clock ticks (100 per second on Linux).
  return (Number(fields[11] ?? 0) + Number(fields[12] ?? 0)) * 10
}

/**
 * CPU time of a process and all its children so far, in ms: the live ones, and those it has
 * waited for (cutime, cstime). PostgreSQL's postmaster and its backends, for one.
 */
export async function cpuOfTree(pid: number): Promise<number> {
  const own = await statFields(pid)
  let ms = (Number(own[11] ?? 0) + Number(own[12] ?? 0) + Number(own[13] ?? 0) + Number(own[14] ?? 0)) * 10
  for (const entry of await readdir('/proc')) {
    if (!/^[0-9]+$/.test(entry)) continue
    const fields = await statFields(Number(entry))
    // ppid is field 4.
    if (Number(fields[1]) === pid) ms += await cpuOfPid(Number(entry))
  }
  return ms
}

/** Busy CPU time of the whole machine so far (all CPUs, idle and iowait excluded), in ms, from /proc/stat. */
export async function machineBusy(): Promise<number> {
  const stat = await readFile('/proc/stat', 'utf8').catch(() => '')
  const fields = (stat.split('\n')[0] ?? '').trim().split(/\s+/).slice(1).map(Number)
  const total = fields.slice(0, 8).reduce((a, b) => a + b, 0)
  return (total - (fields[3] ?? 0) - (fields[4] ?? 0)) * 10
}

/** The postmaster's pid, as the parent of a backend of `pool`'s server. */
export async function postmasterPid(query: (sql: string) => Promise<{ rows: { pid: number }[] }>): Promise<number> {
  const { rows } = await query('SELECT pg_backend_pid() AS pid')
  return Number((await statFields(rows[0]!.pid))[1])
}
