/**
 * The throughput baseline: `pg-logical-replication` with its own pgoutput decoder on a slot of
 * its own, decoding the same WAL as Sluice and doing nothing with it.
 */
import { LogicalReplicationService, PgoutputPlugin } from 'pg-logical-replication'
import type pg from 'pg'
import { parseLsn } from '../../src/pg/lsn.js'

export interface BaselineSlot {
  /** Streams the slot until `commits` transactions have been decoded; resolves with the last commit's end LSN. */
  drain(commits: number, timeoutMs: number): Promise<{ ms: number; lastCommitEnd: bigint }>
  drop(): Promise<void>
}

export async function createBaselineSlot(url: string, pool: pg.Pool, table: string, name: string): Promise<BaselineSlot> {
  await pool.query(`CREATE PUBLICATION ${name} FOR TABLE ${table}`)
  await pool.query(`SELECT pg_create_logical_replication_slot($1, 'pgoutput')`, [name])
  return {
    async drain(commits, timeoutMs) {
      const service = new LogicalReplicationService(
        { connectionString: url },
        { acknowledge: { auto: false, timeoutSeconds: 0 }, flowControl: { enabled: false } },
      )
      let seen = 0
      let lastCommitEnd = 0n
      const start = performance.now()
      try {
        return await new Promise<{ ms: number; lastCommitEnd: bigint }>((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error(`baseline decoded ${seen} of ${commits} transactions in ${timeoutMs} ms`)), timeoutMs)
          service.on('data', (_lsn: string, message: { tag: string; commitEndLsn?: string | null }) => {
            if (message.tag !== 'commit') return
            seen++
            if (message.commitEndLsn) lastCommitEnd = parseLsn(message.commitEndLsn)
            if (seen === commits) {
              clearTimeout(timer)
              resolve({ ms: performance.now() - start, lastCommitEnd })
            }
          })
          service.on('error', reject)
          service.subscribe(new PgoutputPlugin({ protoVersion: 1, publicationNames: [name] }), name).catch(reject)
        })
      } finally {
        await service.stop()
      }
    },
    async drop() {
      await pool.query(`SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1 AND NOT active`, [name])
      await pool.query(`DROP PUBLICATION IF EXISTS ${name}`)
    },
  }
}
