/**
 * The replication seam on a real PostgreSQL (docs/ARCHITECTURE.md: Replication seam): our own
 * copy-both connection starts pgoutput, reads XLogData and keepalives, writes standby status
 * updates that PostgreSQL takes as they are (the slot's confirmed_flush_lsn becomes exactly the
 * LSN sent; the library used before added one, and Sluice sent one less to make up for it), and
 * `pause()` holds frames back until `resume()`.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { parseLsn, type Lsn } from '../src/pg/lsn.js'
import type { ServerFrame } from '../src/replication/copy-both-frames.js'
import { decodePgoutput } from '../src/replication/pgoutput-decoder.js'
import type { PgoutputMessage } from '../src/replication/pgoutput-messages.js'
import { openReplicationConnection, type ReplicationConnection } from '../src/replication/replication-connection.js'
import { createTestDatabase, type TestDatabase } from './support/database.js'
import { drained, waitFor } from './support/wait.js'

let db: TestDatabase
let startLsn: Lsn
/** Slot names are per cluster, which other suites share. */
let slot: string

beforeAll(async () => {
  db = await createTestDatabase()
  await db.pool.query(`CREATE TABLE items (id int PRIMARY KEY, note text)`)
  await db.pool.query(`CREATE PUBLICATION seam FOR TABLE items`)
  slot = `seam_${db.name}`
  const { rows } = await db.pool.query<{ lsn: string }>(`SELECT lsn::text FROM pg_create_logical_replication_slot($1, 'pgoutput')`, [slot])
  startLsn = parseLsn(rows[0]!.lsn)
})

afterAll(async () => {
  await db?.drop()
})

function open(events: { started: boolean; frames: ServerFrame[]; ended: unknown[] }): ReplicationConnection {
  return openReplicationConnection(
    { connectionString: db.url, slot, publication: 'seam', startLsn, acknowledged: 0n as Lsn },
    {
      onStart: () => (events.started = true),
      onFrame: (frame) => events.frames.push(frame),
      onEnd: (error) => events.ended.push(error),
    },
  )
}

const messages = (frames: ServerFrame[]): PgoutputMessage[] => frames.flatMap((f) => (f.kind === 'xlog' ? [decodePgoutput(f.message)] : []))

async function confirmedFlush(): Promise<bigint> {
  const { rows } = await db.pool.query<{ lsn: string }>(`SELECT (confirmed_flush_lsn - '0/0')::text AS lsn FROM pg_replication_slots WHERE slot_name = $1`, [slot])
  return BigInt(rows[0]!.lsn)
}

async function sentLsn(): Promise<bigint> {
  const { rows } = await db.pool.query<{ lsn: string }>(
    `SELECT (r.sent_lsn - '0/0')::text AS lsn FROM pg_stat_replication r JOIN pg_replication_slots s ON s.active_pid = r.pid WHERE s.slot_name = $1`,
    [slot],
  )
  return BigInt(rows[0]?.lsn ?? 0)
}

describe('the copy-both replication connection', () => {
  it('streams pgoutput, acknowledges the LSN it is given, and holds frames back while paused', async () => {
    const events = { started: false, frames: [] as ServerFrame[], ended: [] as unknown[] }
    const connection = open(events)
    try {
      await waitFor(() => expect(events.started).toBe(true))
      await db.pool.query(`INSERT INTO items VALUES (1, 'one'), (2, 'two')`)
      const commit = await waitFor(() => {
        const found = messages(events.frames).find((m) => m.tag === 'commit')
        return found ?? expect.fail('no commit yet')
      })
      expect(messages(events.frames).map((m) => m.tag)).toEqual(['begin', 'relation', 'insert', 'insert', 'commit'])
      expect(events.frames.find((f) => f.kind === 'xlog')).toMatchObject({ walStart: expect.any(BigInt) })

      connection.sendStatus(commit.endLsn)
      await waitFor(async () => expect(await confirmedFlush()).toBe(commit.endLsn))

      connection.pause()
      const before = events.frames.length
      await db.pool.query(`INSERT INTO items SELECT g, repeat('x', 200) FROM generate_series(10, 2009) g`)
      const { rows } = await db.pool.query<{ lsn: string }>(`SELECT (pg_current_wal_lsn() - '0/0')::text AS lsn`)
      // PostgreSQL has sent all of it, and the event loop has had turns to read it: none is handed on.
      await waitFor(async () => expect(await sentLsn()).toBeGreaterThanOrEqual(BigInt(rows[0]!.lsn)))
      await drained()
      await drained()
      expect(events.frames.length).toBe(before)
      connection.resume()
      await waitFor(() => expect(messages(events.frames.slice(before)).filter((m) => m.tag === 'insert')).toHaveLength(2_000))
      expect(events.ended).toEqual([])
    } finally {
      await connection.close()
    }
    expect(events.ended).toEqual([])
  })

  it('reports the end of a connection PostgreSQL refuses', async () => {
    const events = { started: false, frames: [] as ServerFrame[], ended: [] as unknown[] }
    const connection = openReplicationConnection(
      { connectionString: db.url, slot: 'no_such_slot', publication: 'seam', startLsn, acknowledged: 0n as Lsn },
      { onStart: () => (events.started = true), onFrame: (frame) => events.frames.push(frame), onEnd: (error) => events.ended.push(error) },
    )
    try {
      await waitFor(() => expect(events.ended).toHaveLength(1))
      expect(String(events.ended[0])).toMatch(/no_such_slot/)
      expect(events.started).toBe(false)
    } finally {
      await connection.close()
    }
  })
})
