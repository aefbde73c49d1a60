import { describe, expect, it } from 'vitest'
import {
  replicationRoleFix,
  serverVersionProblem,
  slotCapacityFix,
  startupFailureMessage,
  walLevelFix,
} from '../src/pg/startup-checks.js'

describe('serverVersionProblem', () => {
  it('accepts 14 and newer', () => {
    expect(serverVersionProblem(140000, '14.0')).toBeUndefined()
    expect(serverVersionProblem(170004, '17.4')).toBeUndefined()
  })

  it('refuses older servers, naming the version found', () => {
    expect(serverVersionProblem(130015, '13.15')).toBe(
      'PostgreSQL 13.15 (server_version_num 130015) is too old: Sluice needs PostgreSQL 14 or newer. Upgrade the server.',
    )
  })
})

describe('walLevelFix', () => {
  it('is silent when logical replication is possible', () => {
    expect(walLevelFix({ walLevel: 'logical', maxReplicationSlots: 10, maxWalSenders: 10 })).toBeUndefined()
  })

  it('gives the ALTER SYSTEM line and says to restart', () => {
    expect(walLevelFix({ walLevel: 'replica', maxReplicationSlots: 10, maxWalSenders: 10 })).toMatchInlineSnapshot(`
      "Logical replication is not enabled (wal_level = replica, max_replication_slots = 10, max_wal_senders = 10). As a superuser run:

          ALTER SYSTEM SET wal_level = logical;

      then restart PostgreSQL (these settings only take effect at server start). On a managed service set them in its parameter group or flags instead (e.g. rds.logical_replication = 1 on AWS RDS)."
    `)
  })

  it('adds slots and senders when they are 0', () => {
    const fix = walLevelFix({ walLevel: 'minimal', maxReplicationSlots: 0, maxWalSenders: 0 })
    expect(fix).toContain(
      '    ALTER SYSTEM SET wal_level = logical;\n' +
        '    ALTER SYSTEM SET max_replication_slots = 10;\n' +
        '    ALTER SYSTEM SET max_wal_senders = 10;\n\nthen restart PostgreSQL',
    )
  })

  it('asks for senders alone when only they are missing', () => {
    const fix = walLevelFix({ walLevel: 'logical', maxReplicationSlots: 4, maxWalSenders: 0 })
    expect(fix).toContain('    ALTER SYSTEM SET max_wal_senders = 10;\n\nthen restart PostgreSQL')
    expect(fix).not.toContain('wal_level = logical;')
    expect(fix).not.toContain('max_replication_slots = 10;')
  })
})

describe('replicationRoleFix', () => {
  const role = { name: 'app', replication: false, superuser: false, rdsReplication: false }

  it('asks for the REPLICATION attribute, quoting the role name', () => {
    expect(replicationRoleFix(role)).toContain('\n\n    ALTER ROLE "app" WITH REPLICATION;')
    expect(replicationRoleFix({ ...role, name: 'My "App"' })).toContain('ALTER ROLE "My ""App""" WITH REPLICATION;')
  })

  it('accepts replication roles, superusers and RDS replication members', () => {
    expect(replicationRoleFix({ ...role, replication: true })).toBeUndefined()
    expect(replicationRoleFix({ ...role, superuser: true })).toBeUndefined()
    expect(replicationRoleFix({ ...role, rdsReplication: true })).toBeUndefined()
  })
})

describe('slotCapacityFix', () => {
  const existing = [
    { name: 'busy', active: true },
    { name: 'old_slot', active: false },
  ]

  it('is silent when our slot exists, even with no free slot', () => {
    expect(slotCapacityFix({ slotName: 'old_slot', existing, maxReplicationSlots: 2 })).toBeUndefined()
  })

  it('is silent when a slot is free', () => {
    expect(slotCapacityFix({ slotName: 'sluice', existing, maxReplicationSlots: 3 })).toBeUndefined()
  })

  it('lists the slots, how to drop an unused one and how to allow more', () => {
    expect(slotCapacityFix({ slotName: 'sluice', existing, maxReplicationSlots: 2 })).toMatchInlineSnapshot(`
      "Sluice needs to create the replication slot 'sluice', but all 2 slots allowed by max_replication_slots are taken:

          busy (active)
          old_slot (inactive)

      Drop one that nothing uses any more (an abandoned slot also keeps WAL from being removed), e.g.:

          SELECT pg_drop_replication_slot('old_slot');

      or allow more slots and restart PostgreSQL:

          ALTER SYSTEM SET max_replication_slots = 12;"
    `)
  })

  it('uses a placeholder when every slot is active', () => {
    const fix = slotCapacityFix({ slotName: 'sluice', existing: [{ name: 'busy', active: true }], maxReplicationSlots: 1 })
    expect(fix).toContain("SELECT pg_drop_replication_slot('<slot_name>');")
  })
})

describe('startupFailureMessage', () => {
  it('numbers the problems', () => {
    expect(startupFailureMessage(['first', 'second'])).toBe('PostgreSQL is not ready for Sluice:\n\n1. first\n\n2. second')
  })
})
