/**
 * The replication protocol's CopyData frames, byte for byte as PostgreSQL's documentation lays
 * them out: XLogData and keepalives read, the standby status update written with the durable LSN
 * as write, flush and apply positions (not one past it) and the clock from PostgreSQL's epoch.
 */
import { describe, expect, it } from 'vitest'
import type { Lsn } from '../../src/pg/lsn.js'
import { parseServerFrame, standbyStatusUpdate } from '../../src/replication/copy-both-frames.js'

const hex = (text: string) => Buffer.from(text.replaceAll(' ', ''), 'hex')

describe('CopyData frames', () => {
  it('reads XLogData: the WAL start and the pgoutput message after the 25-byte header', () => {
    const frame = hex('77 0000000116b374d8 0000000116b37500 0002b1c2d3e4f506 42 0102')
    expect(parseServerFrame(frame)).toEqual({ kind: 'xlog', walStart: 0x1_16b3_74d8n, message: hex('42 0102') })
  })

  it('reads a keepalive: the WAL end and whether a reply is asked for', () => {
    expect(parseServerFrame(hex('6b 0000000000001000 0002b1c2d3e4f506 01'))).toEqual({ kind: 'keepalive', walEnd: 0x1000n, replyRequested: true })
    expect(parseServerFrame(hex('6b 0000000000001000 0002b1c2d3e4f506 00'))).toEqual({ kind: 'keepalive', walEnd: 0x1000n, replyRequested: false })
  })

  it('refuses an unknown frame and a frame cut short', () => {
    expect(parseServerFrame(hex('78 00'))).toMatchObject({ kind: 'unknown', reason: 'unknown CopyData frame 0x78' })
    expect(parseServerFrame(hex('77 0000000000001000'))).toMatchObject({ kind: 'unknown', reason: 'CopyData frame 0x77 of 9 bytes' })
    expect(parseServerFrame(hex('6b 0000000000001000 0002b1c2d3e4f506'))).toMatchObject({ kind: 'unknown', reason: 'CopyData frame 0x6b of 17 bytes' })
    expect(parseServerFrame(Buffer.alloc(0))).toMatchObject({ kind: 'unknown', reason: 'unknown CopyData frame 0x0' })
  })

  it('writes the standby status update', () => {
    // 2000-01-01T00:00:01.5Z is 1.5 s after PostgreSQL's epoch: 1,500,000 µs.
    const frame = standbyStatusUpdate(0x1_16b3_7500n as Lsn, Date.parse('2000-01-01T00:00:01.500Z'))
    expect(frame.toString('hex')).toBe(
      '72' + '0000000116b37500'.repeat(3) + (1_500_000).toString(16).padStart(16, '0') + '00',
    )
  })
})
