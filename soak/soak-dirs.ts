/**
 * Each soak run's directory under the OS temp directory (its PostgreSQL, and Sluice's data on a
 * tmpfs of its own, `data-disk.ts`), and the sweep of those a run left behind. A run unmounts and
 * removes its own at the end, failed or not; a run that never got there (killed, or a test that
 * timed out around it) left a mounted tmpfs, so each run first sweeps the directories whose run
 * is gone: its owner process has exited, or, written before runs named their owner, no process
 * has a file open under it.
 */
import { execFile } from 'node:child_process'
import { chmod, mkdtemp, readdir, readFile, readlink, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'

const run = promisify(execFile)
const PREFIX = 'sluice-soak-'
const OWNER = 'owner.pid'

/** A new run's directory, naming this process as its owner. */
export async function createSoakDir(parent = tmpdir()): Promise<string> {
  const dir = await mkdtemp(join(parent, PREFIX))
  // As root, PostgreSQL runs as the `postgres` user, which must reach its directory.
  await chmod(dir, 0o755)
  await writeFile(join(dir, OWNER), String(process.pid))
  return dir
}

/** Unmounts what is mounted under `dir` (deepest first) and removes it. */
export async function removeSoakDir(dir: string): Promise<void> {
  for (const mountPoint of (await mountPointsUnder(dir)).reverse()) await run('umount', ['-l', mountPoint])
  await rm(dir, { recursive: true, force: true })
}

/** Removes the directories of runs that are gone; returns them. */
export async function sweepSoakDirs(parent = tmpdir()): Promise<string[]> {
  const names = (await readdir(parent)).filter((name) => name.startsWith(PREFIX))
  const swept: string[] = []
  for (const dir of names.map((name) => join(parent, name))) {
    if (await runIsAlive(dir)) continue
    await removeSoakDir(dir)
    swept.push(dir)
  }
  return swept
}

async function runIsAlive(dir: string): Promise<boolean> {
  const owner = await readFile(join(dir, OWNER), 'utf8').catch(() => undefined)
  if (owner !== undefined) return processExists(Number(owner))
  return (await pathsInUse()).some((path) => path === dir || path.startsWith(`${dir}/`))
}

function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/** Every process's working directory and open files. */
async function pathsInUse(): Promise<string[]> {
  const paths: string[] = []
  for (const pid of (await readdir('/proc')).filter((name) => /^\d+$/.test(name))) {
    const fds = await readdir(`/proc/${pid}/fd`).catch(() => [])
    const links = [`/proc/${pid}/cwd`, ...fds.map((fd) => `/proc/${pid}/fd/${fd}`)]
    for (const link of links) {
      const path = await readlink(link).catch(() => undefined)
      if (path !== undefined) paths.push(path)
    }
  }
  return paths
}

async function mountPointsUnder(dir: string): Promise<string[]> {
  const mounts = await readFile('/proc/self/mounts', 'utf8').catch(() => '')
  // Spaces and other special characters in a mount point are written as octal escapes.
  const points = mounts.split('\n').map((line) => (line.split(' ')[1] ?? '').replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8))))
  return points.filter((point) => point === dir || point.startsWith(`${dir}/`)).sort()
}
