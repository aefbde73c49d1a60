/**
 * Before every (re)connection of the replication stream: is the slot still the history that
 * storage continues? Shape logs are only correct while they are fed, without a gap, from the
 * one slot of the one cluster they were built from (docs/ARCHITECTURE.md I10). When that no longer holds — the slot was dropped or invalidated, it moved past what
 * storage holds, or another cluster answers at the same URL — every shape must go and clients
 * get 409, rather than keep a log with a silent gap. `slotProblem` is the pure decision.
 */
import { formatLsn, parseLsn, type Lsn } from '../pg/lsn.js'
import type { Queryable } from '../pg/introspect.js'

/** What PostgreSQL says about the cluster and Sluice's slot. */
export interface SlotState {
  readonly systemIdentifier: string
  /** Undefined when no slot of that name exists. */
  readonly slot:
    | {
        readonly confirmedFlushLsn: Lsn | undefined
        /** `wal_status = 'lost'` or an `invalidation_reason` (PostgreSQL 17+). */
        readonly invalidation: string | undefined
        readonly plugin: string | undefined
      }
    | undefined
}

/** What storage remembers of the history it continues. */
export interface StoredHistory {
  /** Undefined for a store that never connected. */
  readonly systemIdentifier: string | undefined
  readonly durableLsn: Lsn
}

export const SLOT_PROBLEM = {
  systemChanged: 'system-changed',
  slotMissing: 'slot-missing',
  slotInvalidated: 'slot-invalidated',
  slotAhead: 'slot-ahead',
} as const
export type SlotProblemKind = (typeof SLOT_PROBLEM)[keyof typeof SLOT_PROBLEM]

export interface SlotProblem {
  readonly kind: SlotProblemKind
  /** What happened and what the operator should do, for the log. */
  readonly message: string
  /** The existing slot cannot be used and must be dropped before it is created again. */
  readonly dropSlot: boolean
}

export async function readSlotState(db: Queryable, slot: string): Promise<SlotState> {
  const identity = await db.query<{ system_identifier: string }>('SELECT system_identifier::text FROM pg_catalog.pg_control_system()')
  const systemIdentifier = identity.rows[0]?.system_identifier
  if (systemIdentifier === undefined) throw new Error('pg_control_system() returned no row')
  // to_jsonb keeps this working on versions without `invalidation_reason` (before 17).
  const slots = await db.query<{ confirmed_flush_lsn: string | null; wal_status: string | null; invalidation_reason: string | null; plugin: string | null }>(
    `SELECT confirmed_flush_lsn::text, wal_status, to_jsonb(s) ->> 'invalidation_reason' AS invalidation_reason, plugin
       FROM pg_catalog.pg_replication_slots s WHERE slot_name = $1`,
    [slot],
  )
  const row = slots.rows[0]
  if (!row) return { systemIdentifier, slot: undefined }
  const invalidation = row.invalidation_reason ?? (row.wal_status === 'lost' ? 'wal_removed' : undefined)
  return {
    systemIdentifier,
    slot: {
      confirmedFlushLsn: row.confirmed_flush_lsn === null ? undefined : parseLsn(row.confirmed_flush_lsn),
      invalidation,
      plugin: row.plugin ?? undefined,
    },
  }
}

/** Whether storage can continue from this slot; undefined when it can. */
export function slotProblem(slotName: string, state: SlotState, stored: StoredHistory): SlotProblem | undefined {
  // A store that never connected has nothing to lose: it adopts whatever it finds.
  if (stored.systemIdentifier === undefined) return undefined
  const dropAll = 'Every shape is dropped; clients get 409 and refetch from the new snapshot.'
  if (stored.systemIdentifier !== state.systemIdentifier) {
    return {
      kind: SLOT_PROBLEM.systemChanged,
      message:
        `DATABASE_URL now reaches a different PostgreSQL cluster (system identifier ${state.systemIdentifier}, ` +
        `shape logs were built from ${stored.systemIdentifier}): a restored backup, a failover to a server that is not a ` +
        `physical replica, or a new server at the same address. ${dropAll} If this is not what you meant, point ` +
        'DATABASE_URL back at the original server; the shape logs cannot be recovered either way.',
      dropSlot: false,
    }
  }
  if (!state.slot) {
    return {
      kind: SLOT_PROBLEM.slotMissing,
      message:
        `The replication slot "${slotName}" no longer exists (someone dropped it, or the database was restored), so ` +
        `changes made since Sluice last read it are gone from the stream. ${dropAll} The slot is created again. ` +
        'Do not drop the slot of a running Sluice; to retire one, stop it first.',
      dropSlot: false,
    }
  }
  if (state.slot.invalidation !== undefined) {
    return {
      kind: SLOT_PROBLEM.slotInvalidated,
      message:
        `The replication slot "${slotName}" was invalidated by PostgreSQL (${state.slot.invalidation}), usually because ` +
        'Sluice was down or behind for longer than max_slot_wal_keep_size allows. ' +
        `${dropAll} The slot is dropped and created again. Raise max_slot_wal_keep_size (or keep Sluice running) to avoid this.`,
      dropSlot: true,
    }
  }
  const confirmed = state.slot.confirmedFlushLsn
  if (confirmed !== undefined && confirmed > stored.durableLsn) {
    return {
      kind: SLOT_PROBLEM.slotAhead,
      message:
        `The replication slot "${slotName}" was read up to ${formatLsn(confirmed)} but the shape logs only hold changes up to ` +
        `${formatLsn(stored.durableLsn)}: another process consumed the slot, or SLUICE_DATA_DIR was restored from an older copy. ` +
        `${dropAll} Give every Sluice instance its own SLUICE_REPLICATION_SLOT and data directory.`,
      dropSlot: false,
    }
  }
  return undefined
}
