/**
 * Configuration from the environment: one declarative table (name, parser, default,
 * description), read once at start. A bad value stops the start with the variable's name.
 * `test/readme.test.ts` checks that the README's configuration table lists every option.
 */
import { availableParallelism } from 'node:os'
import { resolve } from 'node:path'
import { ConfigError } from './errors.js'
import { parseTableName } from './pg/table-name.js'
import type { TableName } from './pg/table-name.js'

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const
export type LogLevel = (typeof LOG_LEVELS)[number]

export interface Config {
  readonly databaseUrl: string | undefined
  readonly port: number
  readonly host: string
  readonly dataDir: string
  readonly secret: string | undefined
  readonly replicationSlot: string
  readonly publication: string
  readonly chunkBytes: number
  readonly longPollMs: number
  readonly cacheMaxAgeSeconds: number
  readonly cacheStaleAgeSeconds: number
  readonly allowShapeDeletion: boolean
  readonly logLevel: LogLevel
  readonly tables: readonly TableName[] | undefined
  readonly maxLiveConnections: number
  readonly maxInitialRequests: number
  readonly maxExistingRequests: number
  readonly shutdownTimeoutMs: number
  readonly maxShapes: number
  readonly maxHeaderBytes: number
  readonly maxConcurrentSnapshots: number
  readonly snapshotQueueLength: number
  readonly maxHeldChanges: number
  readonly sseTimeoutMs: number
  readonly sseKeepAliveMs: number
  readonly sseRetryMs: number
  readonly demo: boolean
  readonly allowKeylessTables: boolean
  readonly workers: number
}

type Parser<T> = (text: string) => T

interface Option<K extends keyof Config> {
  readonly key: K
  readonly env: string
  readonly default: string | undefined
  readonly parse: Parser<Config[K]>
  readonly description: string
}

const text: Parser<string> = (value) => value
const optionalText: Parser<string | undefined> = (value) => (value === '' ? undefined : value)

function integer(min: number, max: number): Parser<number> {
  return (value) => {
    if (!/^[0-9]+$/.test(value)) throw new Error(`expected a whole number, got ${JSON.stringify(value)}`)
    const n = Number(value)
    if (n < min || n > max) throw new Error(`expected a number from ${min} to ${max}, got ${value}`)
    return n
  }
}

/** `auto`: one per core. */
const workerCount: Parser<number> = (value) => (value === 'auto' ? availableParallelism() : integer(1, 1024)(value))

const boolean: Parser<boolean> = (value) => {
  const lower = value.toLowerCase()
  if (['true', '1', 'yes', 'on'].includes(lower)) return true
  if (['false', '0', 'no', 'off'].includes(lower)) return false
  throw new Error(`expected true or false, got ${JSON.stringify(value)}`)
}

const identifier: Parser<string> = (value) => {
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(value))
    throw new Error(`expected a lower-case PostgreSQL identifier (a-z, 0-9, _; at most 63), got ${JSON.stringify(value)}`)
  return value
}

const logLevel: Parser<LogLevel> = (value) => {
  if (!(LOG_LEVELS as readonly string[]).includes(value))
    throw new Error(`expected one of ${LOG_LEVELS.join(', ')}, got ${JSON.stringify(value)}`)
  return value as LogLevel
}

const databaseUrl: Parser<string | undefined> = (value) => {
  if (value === '') return undefined
  if (!/^postgres(ql)?:\/\//.test(value)) throw new Error('expected a postgres:// or postgresql:// URL')
  return value
}

const tableList: Parser<readonly TableName[] | undefined> = (value) => {
  if (value.trim() === '') return undefined
  return splitOutsideQuotes(value).map((part) => {
    try {
      return parseTableName(part.trim())
    } catch (error) {
      throw new Error(`bad table name ${JSON.stringify(part.trim())}: ${(error as Error).message}`)
    }
  })
}

/** Splits on commas that are not inside a quoted identifier. */
function splitOutsideQuotes(value: string): string[] {
  const parts: string[] = []
  let current = ''
  let quoted = false
  for (const char of value) {
    if (char === '"') quoted = !quoted
    if (char === ',' && !quoted) {
      parts.push(current)
      current = ''
    } else current += char
  }
  parts.push(current)
  return parts
}

function option<K extends keyof Config>(o: Option<K>): Option<K> {
  return o
}

export const CONFIG_OPTIONS = [
  option({ key: 'databaseUrl', env: 'DATABASE_URL', default: undefined, parse: databaseUrl,
    description: 'PostgreSQL to serve (needs `wal_level=logical`). Unset: an embedded PostgreSQL 17 is started under `SLUICE_DATA_DIR` with a demo table `items`.' }),
  option({ key: 'port', env: 'PORT', default: '3000', parse: integer(0, 65535), description: 'HTTP port.' }),
  option({ key: 'host', env: 'HOST', default: '0.0.0.0', parse: text, description: 'Address to listen on.' }),
  option({ key: 'dataDir', env: 'SLUICE_DATA_DIR', default: './.sluice', parse: (v) => resolve(v),
    description: 'Where shape logs (LMDB) and the embedded database live.' }),
  option({ key: 'secret', env: 'SLUICE_SECRET', default: undefined, parse: optionalText,
    description: 'When set, every shape request must carry it (`secret` parameter or `Authorization: Bearer`).' }),
  option({ key: 'replicationSlot', env: 'SLUICE_REPLICATION_SLOT', default: 'sluice', parse: identifier,
    description: 'Name of the persistent logical replication slot (one per Sluice instance).' }),
  option({ key: 'publication', env: 'SLUICE_PUBLICATION', default: 'sluice', parse: identifier,
    description: 'Name of the publication Sluice manages (tables are added when a shape is first requested).' }),
  option({ key: 'chunkBytes', env: 'SLUICE_CHUNK_BYTES', default: String(10 * 1024 * 1024), parse: integer(1, 1024 ** 3),
    description: 'A log chunk closes at the first transaction end past this many bytes.' }),
  option({ key: 'longPollMs', env: 'SLUICE_LONG_POLL_MS', default: '20000', parse: integer(1, 600_000),
    description: 'How long a live request waits for a change before answering up-to-date.' }),
  option({ key: 'cacheMaxAgeSeconds', env: 'SLUICE_CACHE_MAX_AGE', default: '60', parse: integer(0, 31_536_000),
    description: '`max-age` of non-live responses.' }),
  option({ key: 'cacheStaleAgeSeconds', env: 'SLUICE_CACHE_STALE_AGE', default: '300', parse: integer(0, 31_536_000),
    description: '`stale-while-revalidate` of non-live responses.' }),
  option({ key: 'allowShapeDeletion', env: 'SLUICE_ALLOW_SHAPE_DELETION', default: 'false', parse: boolean,
    description: 'Enables `DELETE /v1/shape`.' }),
  option({ key: 'logLevel', env: 'LOG_LEVEL', default: 'info', parse: logLevel,
    description: 'One of fatal, error, warn, info, debug, trace, silent.' }),
  option({ key: 'tables', env: 'SLUICE_TABLES', default: undefined, parse: tableList,
    description: 'Comma-separated allow-list of tables that may be served (`items, app."My Table"`). Unset: any table Sluice\'s role can read.' }),
  option({ key: 'maxLiveConnections', env: 'SLUICE_MAX_LIVE_CONNECTIONS', default: '10000', parse: integer(1, 1_000_000),
    description: 'Open live requests (long-poll and SSE) beyond which new ones get 503 with `retry-after`.' }),
  option({ key: 'maxInitialRequests', env: 'SLUICE_MAX_CONCURRENT_REQUESTS_INITIAL', default: '300', parse: integer(1, 1_000_000),
    description: 'Requests for shapes that do not exist yet (each takes a snapshot) in flight at once; past that they get 503 with `retry-after` (Electric\'s `max_concurrent_requests.initial`).' }),
  option({ key: 'maxExistingRequests', env: 'SLUICE_MAX_CONCURRENT_REQUESTS_EXISTING', default: '10000', parse: integer(1, 1_000_000),
    description: 'Non-live requests for existing shapes in flight at once; past that they get 503 with `retry-after` (Electric\'s `max_concurrent_requests.existing`). Live requests count against `SLUICE_MAX_LIVE_CONNECTIONS`.' }),
  option({ key: 'shutdownTimeoutMs', env: 'SLUICE_SHUTDOWN_TIMEOUT_MS', default: '8000', parse: integer(0, 600_000),
    description: 'On SIGTERM, how long in-flight requests may take before connections are closed.' }),
  option({ key: 'sseTimeoutMs', env: 'SLUICE_SSE_TIMEOUT_MS', default: '60000', parse: integer(1, 3_600_000),
    description: 'The server ends a Server-Sent Events stream after this long; clients reconnect and resume.' }),
  option({ key: 'sseKeepAliveMs', env: 'SLUICE_SSE_KEEPALIVE_MS', default: '20000', parse: integer(1, 3_600_000),
    description: 'A `: keep-alive` comment goes to every idle SSE stream this often.' }),
  option({ key: 'sseRetryMs', env: 'SLUICE_SSE_RETRY_MS', default: '1000', parse: integer(0, 3_600_000),
    description: 'The `retry:` field of SSE streams: how soon a browser `EventSource` reconnects after a drop.' }),
  option({ key: 'maxHeaderBytes', env: 'SLUICE_MAX_HEADER_BYTES', default: String(256 * 1024), parse: integer(1024, 16 * 1024 * 1024),
    description: 'Largest request line plus headers accepted (Node answers 431 beyond it). Large enough for a `where` at its own 10 KiB limit, percent-encoded.' }),
  option({ key: 'maxShapes', env: 'SLUICE_MAX_SHAPES', default: '100000', parse: integer(1, 10_000_000),
    description: 'Shapes kept at most; creating one more drops the least recently used (its clients get 409 and refetch).' }),
  option({ key: 'maxConcurrentSnapshots', env: 'SLUICE_MAX_CONCURRENT_SNAPSHOTS', default: '4', parse: integer(1, 64),
    description: 'Snapshot queries running at once (each holds one PostgreSQL connection); more wait in a queue.' }),
  option({ key: 'snapshotQueueLength', env: 'SLUICE_SNAPSHOT_QUEUE', default: '1000', parse: integer(0, 100_000),
    description: 'Snapshots allowed to wait for a slot; past that a request for a new shape gets 503 with `retry-after`.' }),
  option({ key: 'maxHeldChanges', env: 'SLUICE_MAX_HELD_CHANGES', default: '1000000', parse: integer(1_000, 1_000_000_000),
    description: 'Row changes kept in memory for new shapes whose snapshot waits in the queue; past that the shape holding the most is dropped (its clients refetch) and a warning says to raise `SLUICE_MAX_CONCURRENT_SNAPSHOTS`.' }),
  option({ key: 'demo', env: 'SLUICE_DEMO', default: 'false', parse: boolean,
    description: 'Serves the demo todo page at `/` and its write endpoint `/demo/items` (table `items`, created if missing). On by itself with the embedded database.' }),
  option({ key: 'allowKeylessTables', env: 'SLUICE_ALLOW_KEYLESS_TABLES', default: 'false', parse: boolean,
    description: 'Serves tables without a primary key or unique NOT NULL index, keyed on all their columns (as Electric does). Identical rows then reach clients as one row, and when one of them changes or goes, clients drop that row though copies remain. Off: such tables get 400 naming the fix.' }),
  option({ key: 'workers', env: 'SLUICE_WORKERS', default: 'auto', parse: workerCount,
    description: 'HTTP worker processes (`auto`: one per core). With 1, one process does everything; above 1, one more process owns replication, shapes and storage, and the workers serve HTTP from the same storage (see "Worker processes").' }),
] as const

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const values: Record<string, unknown> = {}
  for (const o of CONFIG_OPTIONS) {
    const raw = env[o.env] ?? o.default
    if (raw === undefined) {
      values[o.key] = undefined
      continue
    }
    try {
      values[o.key] = o.parse(raw)
    } catch (error) {
      throw new ConfigError(`${o.env}: ${(error as Error).message}`)
    }
  }
  return values as unknown as Config
}
