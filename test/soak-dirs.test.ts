import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { existsSync, readFileSync } from 'node:fs'
import { mkdir, mkdtemp, open, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { DataDisk } from '../soak/data-disk.js'
import { createSoakDir, removeSoakDir, sweepSoakDirs } from '../soak/soak-dirs.js'

let parent: string

beforeEach(async () => {
  parent = await mkdtemp(join(tmpdir(), 'sluice-unit-soak-dirs-'))
})

afterEach(async () => {
  for (const dir of await sweepSoakDirs(parent)) expect(dir).toBe('no leftover')
  await rm(parent, { recursive: true, force: true })
})

const mounted = (dir: string) => readFileSync('/proc/self/mounts', 'utf8').includes(` ${dir} `)

/** The pid of a process that has exited. */
async function goneProcess(): Promise<number> {
  const child = spawn('true')
  await once(child, 'exit')
  return child.pid!
}

/** A run's directory with its data disk mounted, as `runSoak` leaves it when it never cleans up. */
async function leftBehind(owner?: number): Promise<{ dir: string; data: string }> {
  const dir = await createSoakDir(parent)
  if (owner === undefined) await rm(join(dir, 'owner.pid'))
  else await writeFile(join(dir, 'owner.pid'), String(owner))
  const data = join(dir, 'data')
  const disk = await DataDisk.mount(data, 1)
  if (typeof disk === 'string') await mkdir(data, { recursive: true })
  await writeFile(join(data, 'lmdb'), 'x')
  return { dir, data }
}

describe('soak directories', () => {
  it('unmounts and removes the directory of a run whose process is gone, and only that', async () => {
    const live = await createSoakDir(parent)
    const gone = await leftBehind(await goneProcess())
    expect(await sweepSoakDirs(parent)).toEqual([gone.dir])
    expect(mounted(gone.data)).toBe(false)
    expect(existsSync(gone.dir)).toBe(false)
    expect(existsSync(live)).toBe(true)
    await removeSoakDir(live)
  })

  it('keeps an ownerless directory (an older run\'s) while a process has a file open in it', async () => {
    const older = await leftBehind()
    const file = await open(join(older.data, 'lmdb'), 'r')
    try {
      expect(await sweepSoakDirs(parent)).toEqual([])
    } finally {
      await file.close()
    }
    expect(await sweepSoakDirs(parent)).toEqual([older.dir])
    expect(mounted(older.data)).toBe(false)
  })

  it('removes its own directory with its disk mounted', async () => {
    const run = await leftBehind(process.pid)
    await removeSoakDir(run.dir)
    expect(mounted(run.data)).toBe(false)
    expect(existsSync(run.dir)).toBe(false)
  })
})
