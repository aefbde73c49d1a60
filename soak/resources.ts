/**
 * Sluice's resident memory and open file descriptors, sampled from /proc while it runs, and
 * their slope: a least-squares line per process lifetime (each restart starts afresh).
 */
import { readdir, readFile } from 'node:fs/promises'

export interface Sample {
  readonly pid: number
  readonly atMs: number
  readonly rssMb: number
  readonly fds: number
}

export class ResourceSampler {
  readonly samples: Sample[] = []

  async sample(pid: number | undefined, atMs: number): Promise<void> {
    if (pid === undefined) return
    try {
      const status = await readFile(`/proc/${pid}/status`, 'utf8')
      const rssKb = Number(/^VmRSS:\s+(\d+)/m.exec(status)?.[1] ?? NaN)
      const fds = (await readdir(`/proc/${pid}/fd`)).length
      if (Number.isFinite(rssKb)) this.samples.push({ pid, atMs, rssMb: rssKb / 1024, fds })
    } catch {
      // the process ended between the two reads
    }
  }

  /**
   * Per process lifetime of at least `minMs`: its length and slopes (per minute), leaving out
   * its first `warmUpMs` (catching up after a restart is not growth).
   */
  lifetimes(minMs: number, warmUpMs: number): { pid: number; ms: number; rssMbPerMin: number; fdsPerMin: number; rssMbMax: number; fdsMax: number }[] {
    const byPid = new Map<number, Sample[]>()
    for (const sample of this.samples) {
      const list = byPid.get(sample.pid)
      if (list) list.push(sample)
      else byPid.set(sample.pid, [sample])
    }
    return [...byPid.entries()]
      .map(([pid, all]) => [pid, all.filter((s) => s.atMs - all[0]!.atMs >= warmUpMs)] as const)
      .filter(([, list]) => list.length > 1)
      .map(([pid, list]) => ({
        pid,
        ms: list.at(-1)!.atMs - list[0]!.atMs,
        rssMbPerMin: slope(list, (s) => s.rssMb) * 60_000,
        fdsPerMin: slope(list, (s) => s.fds) * 60_000,
        rssMbMax: Math.max(...list.map((s) => s.rssMb)),
        fdsMax: Math.max(...list.map((s) => s.fds)),
      }))
      .filter((life) => life.ms >= minMs)
  }
}

function slope(samples: readonly Sample[], value: (s: Sample) => number): number {
  const n = samples.length
  if (n < 2) return 0
  const meanT = samples.reduce((sum, s) => sum + s.atMs, 0) / n
  const meanV = samples.reduce((sum, s) => sum + value(s), 0) / n
  let num = 0
  let den = 0
  for (const s of samples) {
    num += (s.atMs - meanT) * (value(s) - meanV)
    den += (s.atMs - meanT) ** 2
  }
  return den === 0 ? 0 : num / den
}
