/**
 * Sluice as a child process (`node --import tsx src/main.ts`), for tests that kill it with
 * SIGKILL or need it to outlive a database restart. Keeps the tail of its output for messages.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { freePort } from '../../src/pg/free-port.js'

export class ChildSluice {
  #child: ChildProcess | undefined
  #exited: Promise<void> = Promise.resolve()
  output = ''
  port = 0
  /** Hears everything the server writes (stdout and stderr), across restarts. */
  onOutput: ((chunk: Buffer) => void) | undefined
  /** Hears every exit, asked for or not, with the exit code or signal. */
  onExit: ((code: number | null, signal: NodeJS.Signals | null) => void) | undefined

  /** The running server's process id. */
  get pid(): number | undefined {
    return this.#child?.exitCode === null && this.#child.signalCode === null ? this.#child.pid : undefined
  }

  /** The server's own child processes: its HTTP workers, with SLUICE_WORKERS above 1 (Linux). */
  childPids(): number[] {
    const pid = this.pid
    if (pid === undefined) return []
    try {
      return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number)
    } catch {
      // Gone meanwhile.
      return []
    }
  }

  /** `preload`: modules each process of the server imports first (a test seam such as `hold-owner-messages.ts`). */
  constructor(readonly env: Record<string, string>, readonly preload: readonly URL[] = []) {}

  get baseUrl(): string {
    return `http://127.0.0.1:${this.port}`
  }

  get shapeUrl(): string {
    return `${this.baseUrl}/v1/shape`
  }

  /** Starts the server (on a new port, same data directory) and waits until it is healthy. */
  async start(timeoutMs = 30_000): Promise<void> {
    this.port = await freePort()
    const child = spawn(process.execPath, ['--import', 'tsx', ...this.preload.flatMap((url) => ['--import', url.href]), 'src/main.ts'], {
      // One process unless the test asks for HTTP workers (`test/workers.pg.test.ts`).
      env: { ...process.env, HOST: '127.0.0.1', PORT: String(this.port), LOG_LEVEL: 'warn', SLUICE_WORKERS: '1', ...this.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    this.#child = child
    // 'close', not 'exit': a process's last output (its fatal log line) may still be in the pipe when it has exited.
    this.#exited = new Promise((resolve) =>
      child.once('close', (code, signal) => {
        this.onExit?.(code, signal)
        resolve()
      }),
    )
    const keep = (chunk: Buffer) => {
      this.output = (this.output + chunk.toString()).slice(-20_000)
      this.onOutput?.(chunk)
    }
    child.stdout!.on('data', keep)
    child.stderr!.on('data', keep)
    const deadline = Date.now() + timeoutMs
    for (;;) {
      if (child.exitCode !== null) throw new Error(`Sluice exited with ${child.exitCode}:\n${this.output}`)
      const status = await fetch(`${this.baseUrl}/v1/health`).then((r) => r.status, () => 0)
      if (status === 200) return
      if (Date.now() > deadline) throw new Error(`Sluice did not become healthy:\n${this.output}`)
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
  }

  /** SIGKILL: no handler runs, nothing is flushed. Resolves once the process is gone. */
  async kill(): Promise<void> {
    this.#child?.kill('SIGKILL')
    await this.#exited
    this.#child = undefined
  }

  /** SIGTERM: a graceful shutdown. Resolves once the process is gone. */
  async terminate(): Promise<void> {
    this.#child?.kill('SIGTERM')
    await this.#exited
    this.#child = undefined
  }

  async health(): Promise<{ status: number; body: string; retryAfter: string | null }> {
    const response = await fetch(`${this.baseUrl}/v1/health`)
    return { status: response.status, body: await response.text(), retryAfter: response.headers.get('retry-after') }
  }
}
