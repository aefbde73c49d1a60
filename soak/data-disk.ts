/**
 * Sluice's data directory on a small filesystem of its own (a tmpfs, mounted as root), so the
 * soak can fill it to the last byte and free it again. Where mounting is not allowed, there is
 * no such disk and the disk-full fault is left out (and the report says so).
 */
import { execFile } from 'node:child_process'
import { mkdir, rm, statfs } from 'node:fs/promises'
import { open } from 'node:fs/promises'
import { join } from 'node:path'
import { promisify } from 'node:util'

const run = promisify(execFile)
const FILLER = 'filler'

export class DataDisk {
  private constructor(readonly dir: string) {}

  /** Mounts a tmpfs of `megabytes` on `dir`; undefined (with the reason) when that is not possible. */
  static async mount(dir: string, megabytes: number): Promise<DataDisk | string> {
    await mkdir(dir, { recursive: true })
    try {
      await run('mount', ['-t', 'tmpfs', '-o', `size=${megabytes}m`, 'tmpfs', dir])
      return new DataDisk(dir)
    } catch (error) {
      return `cannot mount a tmpfs for the data directory (${(error as Error).message.split('\n')[0]}): needs root`
    }
  }

  /** Fills every free byte with one file. */
  async fill(): Promise<void> {
    const file = await open(join(this.dir, FILLER), 'a')
    const block = Buffer.alloc(1024 * 1024)
    try {
      for (;;) {
        const { bavail, bsize } = await statfs(this.dir)
        if (bavail === 0) return
        await file.write(bavail * bsize >= block.length ? block : block.subarray(0, bavail * bsize))
      }
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOSPC') throw error
    } finally {
      await file.close()
    }
  }

  async free(): Promise<void> {
    await rm(join(this.dir, FILLER), { force: true })
  }

  async freeBytes(): Promise<number> {
    const { bavail, bsize } = await statfs(this.dir)
    return bavail * bsize
  }

  async unmount(): Promise<void> {
    await run('umount', ['-l', this.dir]).catch(() => undefined)
  }
}
