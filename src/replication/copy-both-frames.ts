/**
 * The frames of PostgreSQL's streaming replication protocol inside CopyData, both ways
 * (https://www.postgresql.org/docs/current/protocol-replication.html). Pure: the connection
 * (`replication-connection.ts`) moves the bytes, this reads and writes them.
 * - from the server: XLogData `w` (a pgoutput message and the WAL positions around it) and
 *   the primary keepalive `k` (the server's WAL end, and whether it wants a reply now);
 * - to the server: the standby status update `r`, where write, flush and apply are each "the
 *   last WAL byte + 1" Sluice holds. A logical slot's `confirmed_flush_lsn` becomes the flush
 *   position as sent, so Sluice sends the durable LSN itself (docs/ARCHITECTURE.md I5).
 */
import type { Lsn } from '../pg/lsn.js'

export type ServerFrame =
  | { readonly kind: 'xlog'; readonly walStart: Lsn; readonly message: Buffer }
  | { readonly kind: 'keepalive'; readonly walEnd: Lsn; readonly replyRequested: boolean }
  /** Not a frame this protocol has, or cut short: the stream can no longer be trusted. */
  | { readonly kind: 'unknown'; readonly reason: string; readonly bytes: Buffer }

const XLOG_DATA = 0x77
const KEEPALIVE = 0x6b
const STANDBY_STATUS = 0x72
/** `w`, the WAL start and end, the send time. */
const XLOG_HEADER_BYTES = 25
/** `k`, the WAL end, the send time, the reply flag. */
const KEEPALIVE_BYTES = 18
const STATUS_BYTES = 34
/** PostgreSQL counts time in microseconds from 2000-01-01 UTC. */
const POSTGRES_EPOCH_MS = 946_684_800_000

export function parseServerFrame(frame: Buffer): ServerFrame {
  const tag = frame[0]
  if (tag === XLOG_DATA && frame.length >= XLOG_HEADER_BYTES) {
    return { kind: 'xlog', walStart: frame.readBigUInt64BE(1) as Lsn, message: frame.subarray(XLOG_HEADER_BYTES) }
  }
  if (tag === KEEPALIVE && frame.length === KEEPALIVE_BYTES) {
    return { kind: 'keepalive', walEnd: frame.readBigUInt64BE(1) as Lsn, replyRequested: frame[17] === 1 }
  }
  const known = tag === XLOG_DATA || tag === KEEPALIVE
  return {
    kind: 'unknown',
    reason: known ? `CopyData frame 0x${tag.toString(16)} of ${frame.length} bytes` : `unknown CopyData frame 0x${(tag ?? 0).toString(16)}`,
    bytes: frame,
  }
}

/** The standby status update saying everything before `durable` is written, flushed and applied. */
export function standbyStatusUpdate(durable: Lsn, nowMs: number): Buffer {
  const frame = Buffer.alloc(STATUS_BYTES)
  frame[0] = STANDBY_STATUS
  frame.writeBigUInt64BE(durable, 1)
  frame.writeBigUInt64BE(durable, 9)
  frame.writeBigUInt64BE(durable, 17)
  frame.writeBigInt64BE(BigInt(Math.round(nowMs - POSTGRES_EPOCH_MS)) * 1000n, 25)
  // Byte 33, "reply now", stays 0: the server's keepalives are how Sluice hears from it.
  return frame
}
