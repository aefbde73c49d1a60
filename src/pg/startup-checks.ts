/**
 * Checks, before anything else runs, that the database can feed Sluice a logical replication
 * stream. Each problem found becomes a paragraph with the exact SQL that fixes it, and all of
 * them are reported at once so the operator does not discover them one restart at a time.
 * The message builders are pure functions so they can be tested without a misconfigured server.
 */
import { StartupCheckError } from '../errors.js'
import { quoteIdent } from './sql.js'
import type { Queryable } from './introspect.js'

/** Logical replication of the kind Sluice needs (pgoutput, `pg_current_snapshot()`: PostgreSQL 14 and newer). */
export const MIN_SERVER_VERSION_NUM = 140000

export interface StartupCheckOptions {
  /** Sluice's replication slot; when it exists already it needs no free slot. */
  readonly slotName: string
}

export interface ServerIdentity {
  /** e.g. 170004 for 17.4 */
  readonly serverVersionNum: number
  /** `pg_control_system().system_identifier`: tells one cluster from another (and from a restored copy's). */
  readonly systemIdentifier: string
}

export interface ReplicationSettings {
  readonly walLevel: string
  readonly maxReplicationSlots: number
  readonly maxWalSenders: number
}

export interface RoleInfo {
  readonly name: string
  readonly replication: boolean
  readonly superuser: boolean
  /** Member of AWS RDS's `rds_replication`, which grants replication without the attribute. */
  readonly rdsReplication: boolean
}

export interface SlotUsage {
  readonly slotName: string
  /** Every slot of the cluster, ours included when it exists. */
  readonly existing: readonly { readonly name: string; readonly active: boolean }[]
  readonly maxReplicationSlots: number
}

/**
 * Verifies version, `wal_level`, replication privilege and slot capacity.
 * @throws StartupCheckError listing every problem found and how to fix each.
 */
export async function runStartupChecks(db: Queryable, options: StartupCheckOptions): Promise<ServerIdentity> {
  const settings = await db.query<{
    server_version_num: string
    server_version: string
    wal_level: string
    max_replication_slots: string
    max_wal_senders: string
  }>(
    `SELECT current_setting('server_version_num') AS server_version_num,
            current_setting('server_version') AS server_version,
            current_setting('wal_level') AS wal_level,
            current_setting('max_replication_slots') AS max_replication_slots,
            current_setting('max_wal_senders') AS max_wal_senders`,
  )
  const row = settings.rows[0]
  if (!row) throw new Error('current_setting() returned no row')
  const serverVersionNum = Number(row.server_version_num)
  // The rest of the checks use catalogs of recent versions; stop here on an old server.
  const versionProblem = serverVersionProblem(serverVersionNum, row.server_version)
  if (versionProblem) throw new StartupCheckError(versionProblem)

  const replication: ReplicationSettings = {
    walLevel: row.wal_level,
    maxReplicationSlots: Number(row.max_replication_slots),
    maxWalSenders: Number(row.max_wal_senders),
  }
  // One query at a time: `db` may be a single pg.Client, which must not be sent overlapping queries.
  const role = await loadRole(db)
  const slots = await db.query<{ slot_name: string; active: boolean }>(
    'SELECT slot_name, active FROM pg_catalog.pg_replication_slots ORDER BY slot_name',
  )
  const identity = await db.query<{ system_identifier: string }>(
    'SELECT system_identifier::text FROM pg_catalog.pg_control_system()',
  )
  const problems = [
    walLevelFix(replication),
    replicationRoleFix(role),
    slotCapacityFix({
      slotName: options.slotName,
      existing: slots.rows.map((slot) => ({ name: slot.slot_name, active: slot.active })),
      maxReplicationSlots: replication.maxReplicationSlots,
    }),
  ].filter((problem): problem is string => problem !== undefined)
  if (problems.length > 0) throw new StartupCheckError(startupFailureMessage(problems))

  const systemIdentifier = identity.rows[0]?.system_identifier
  if (systemIdentifier === undefined) throw new Error('pg_control_system() returned no row')
  return { serverVersionNum, systemIdentifier }
}

/** Joins the problems found into the one message an operator reads. */
export function startupFailureMessage(problems: readonly string[]): string {
  const intro = 'PostgreSQL is not ready for Sluice:'
  return [intro, ...problems.map((problem, i) => `${i + 1}. ${problem}`)].join('\n\n')
}

/** @returns why the server is too old, or undefined when it is recent enough. */
export function serverVersionProblem(serverVersionNum: number, serverVersion: string): string | undefined {
  if (serverVersionNum >= MIN_SERVER_VERSION_NUM) return undefined
  return `PostgreSQL ${serverVersion} (server_version_num ${serverVersionNum}) is too old: Sluice needs PostgreSQL 14 or newer. Upgrade the server.`
}

/** @returns the settings to change, or undefined when logical replication is possible. */
export function walLevelFix(settings: ReplicationSettings): string | undefined {
  const lines: string[] = []
  if (settings.walLevel !== 'logical') lines.push('ALTER SYSTEM SET wal_level = logical;')
  if (settings.maxReplicationSlots === 0) lines.push('ALTER SYSTEM SET max_replication_slots = 10;')
  if (settings.maxWalSenders === 0) lines.push('ALTER SYSTEM SET max_wal_senders = 10;')
  if (lines.length === 0) return undefined
  const found = [
    `wal_level = ${settings.walLevel}`,
    `max_replication_slots = ${settings.maxReplicationSlots}`,
    `max_wal_senders = ${settings.maxWalSenders}`,
  ].join(', ')
  return (
    `Logical replication is not enabled (${found}). As a superuser run:\n\n` +
    lines.map((line) => `    ${line}`).join('\n') +
    '\n\nthen restart PostgreSQL (these settings only take effect at server start). ' +
    'On a managed service set them in its parameter group or flags instead ' +
    '(e.g. rds.logical_replication = 1 on AWS RDS).'
  )
}

/** @returns the GRANT-like fix when the role cannot open a replication connection. */
export function replicationRoleFix(role: RoleInfo): string | undefined {
  if (role.replication || role.superuser || role.rdsReplication) return undefined
  return (
    `The role ${quoteIdent(role.name)} that Sluice connects as lacks the REPLICATION attribute, ` +
    'so it cannot stream changes. As a superuser run:\n\n' +
    `    ALTER ROLE ${quoteIdent(role.name)} WITH REPLICATION;`
  )
}

/** @returns what to do when our slot does not exist and no slot is free to create it. */
export function slotCapacityFix(usage: SlotUsage): string | undefined {
  if (usage.existing.some((slot) => slot.name === usage.slotName)) return undefined
  if (usage.existing.length < usage.maxReplicationSlots) return undefined
  const list = usage.existing.map((slot) => `    ${slot.name} (${slot.active ? 'active' : 'inactive'})`).join('\n')
  const unused = usage.existing.find((slot) => !slot.active)?.name ?? '<slot_name>'
  return (
    `Sluice needs to create the replication slot ${quoteLiteral(usage.slotName)}, but all ` +
    `${usage.maxReplicationSlots} slots allowed by max_replication_slots are taken:\n\n${list}\n\n` +
    'Drop one that nothing uses any more (an abandoned slot also keeps WAL from being removed), e.g.:\n\n' +
    `    SELECT pg_drop_replication_slot(${quoteLiteral(unused)});\n\n` +
    'or allow more slots and restart PostgreSQL:\n\n' +
    `    ALTER SYSTEM SET max_replication_slots = ${usage.maxReplicationSlots + 10};`
  )
}

async function loadRole(db: Queryable): Promise<RoleInfo> {
  const result = await db.query<{ name: string; replication: boolean; superuser: boolean; rds_replication: boolean }>(
    `SELECT r.rolname AS name, r.rolreplication AS replication, r.rolsuper AS superuser,
            EXISTS (SELECT 1 FROM pg_catalog.pg_roles g
                     WHERE g.rolname = 'rds_replication' AND pg_has_role(r.oid, g.oid, 'MEMBER')) AS rds_replication
       FROM pg_catalog.pg_roles r
      WHERE r.rolname = current_user`,
  )
  const row = result.rows[0]
  if (!row) throw new Error('current_user has no pg_roles entry')
  return { name: row.name, replication: row.replication, superuser: row.superuser, rdsReplication: row.rds_replication }
}

function quoteLiteral(text: string): string {
  return `'${text.replaceAll("'", "''")}'`
}
