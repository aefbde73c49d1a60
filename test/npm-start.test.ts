/**
 * As a new user: `npm start` with no DATABASE_URL builds, starts an embedded PostgreSQL with
 * the demo table, prints a curl line, and that curl line prints rows. SIGTERM stops it cleanly.
 */
import { execFile, spawn } from 'node:child_process'
import { chmod, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { describe, expect, it } from 'vitest'
import { freePort } from '../src/pg/free-port.js'

const run = promisify(execFile)

describe('npm start', () => {
  it('serves the demo table and the printed curl line prints rows', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'sluice-npm-start-'))
    const port = await freePort()
    // mkdtemp makes a private directory; a user's data directory is normally readable.
    await chmod(dataDir, 0o755)
    const env: NodeJS.ProcessEnv = { ...process.env, SLUICE_DATA_DIR: dataDir, PORT: String(port), LOG_LEVEL: 'warn' }
    delete env['DATABASE_URL']
    const child = spawn('npm', ['start'], { env, stdio: ['ignore', 'pipe', 'pipe'], detached: true })
    let output = ''
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()))
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()))
    const exited = new Promise<string>((resolve) => child.on('exit', (code, signal) => resolve(String(code ?? signal))))
    try {
      const curlLine = await new Promise<string>((resolve, reject) => {
        const timer = setInterval(() => {
          const match = /^\s*(curl '[^']+')\s*$/m.exec(output)
          if (match) {
            clearInterval(timer)
            resolve(match[1]!)
          }
        }, 100)
        void exited.then((code) => {
          clearInterval(timer)
          reject(new Error(`npm start exited with ${code}:\n${output}`))
        })
      })
      expect(curlLine).toContain(`:${port}/v1/shape?table=items&offset=-1`)
      const { stdout } = await run('sh', ['-c', `${curlLine} --silent --show-error --fail`])
      const rows = JSON.parse(stdout) as { value?: { title: string } }[]
      expect(rows.filter((m) => m.value).map((m) => m.value!.title)).toContain('Read the README')
    } finally {
      // SIGTERM to the whole group, as a terminal's Ctrl-C would: npm and Sluice both get it.
      process.kill(-child.pid!, 'SIGTERM')
      const code = await Promise.race([exited, new Promise((r) => setTimeout(() => r('timeout'), 15_000))])
      if (code === 'timeout') process.kill(-child.pid!, 'SIGKILL')
      // npm may exit before Sluice has finished stopping its PostgreSQL: give it a bound.
      let leftovers = ''
      for (let i = 0; i < 100; i++) {
        leftovers = await run('pgrep', ['-f', dataDir]).then((r) => r.stdout.trim(), () => '')
        if (leftovers === '') break
        await new Promise((resolve) => setTimeout(resolve, 100))
      }
      await rm(dataDir, { recursive: true, force: true })
      expect(['0', 'SIGTERM'], output).toContain(code)
      expect(leftovers, 'processes still running on the data directory').toBe('')
    }
  }, 180_000)
})
