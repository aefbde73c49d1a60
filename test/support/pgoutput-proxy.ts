/**
 * A PostgreSQL wire proxy that garbles logical replication the way a buggy proxy or pooler
 * could, while keeping the pg protocol's framing intact (a broken frame only ends the
 * connection, which proves nothing). Only connections that open a replication session are
 * touched; inside them, only CopyData XLogData frames, i.e. pgoutput messages:
 * - `tag`: the message type byte replaced; `relation`: the relation id changed;
 *   `count`: a tuple's column count changed; `kind`: a tuple value's kind byte replaced;
 *   `truncate`: the message cut short (the CopyData length fixed to match);
 * - `begin-swap`: a Begin sent after the message that followed it; `replay`: a transaction sent
 *   again after its Commit; `drop-begin`: a Begin left out;
 * - `frame-type`: the XLogData frame's own type byte replaced.
 * These are the corruptions Sluice claims to detect; a changed byte inside a value is not among
 * them because nothing in the stream could tell it from the real value.
 */
import net from 'node:net'
import { mulberry32 } from './seeded-random.js'

export const CORRUPTIONS = ['tag', 'relation', 'count', 'kind', 'truncate', 'begin-swap', 'replay', 'drop-begin', 'frame-type'] as const
export type Corruption = (typeof CORRUPTIONS)[number]

export interface PgoutputProxy {
  readonly port: number
  /** Corruptions applied so far, by kind. */
  readonly applied: Record<Corruption, number>
  /** Starts corrupting: each kind `perKind` times, in turn, at about one XLogData frame in `every`. */
  corrupt(options: { perKind: number; every: number; seed: number }): void
  /** Whether every corruption asked for has been applied. */
  done(): boolean
  close(): Promise<void>
}

const COPY_DATA = 0x64 // 'd'
const XLOG_DATA = 0x77 // 'w'
const XLOG_HEADER = 25
const CHANGE_TAGS = new Set(['I', 'U', 'D'])
/** After corrupting a connection, leave it alone this long (Sluice drops it well within). */
const QUIET_MS = 1_000

export async function startPgoutputProxy(target: { host: string; port: number }): Promise<PgoutputProxy> {
  const open = new Set<net.Socket>()
  const applied = Object.fromEntries(CORRUPTIONS.map((kind) => [kind, 0])) as Record<Corruption, number>
  let plan: { perKind: number; every: number; random: () => number; next: number } | undefined

  /**
   * The corruption to apply to this frame, if any: kinds in turn, each when a frame fits it.
   * One per connection at a time: frames still in flight on a connection Sluice has dropped
   * would take corruptions it never reads.
   */
  function choose(tag: string, connection: { lastCorruptedMs: number }): Corruption | undefined {
    if (!plan || Date.now() - connection.lastCorruptedMs < QUIET_MS || plan.random() * plan.every >= 1) return undefined
    for (let tried = 0; tried < CORRUPTIONS.length; tried++) {
      const kind = CORRUPTIONS[plan.next]!
      if (applied[kind] >= plan.perKind) {
        plan.next = (plan.next + 1) % CORRUPTIONS.length
        continue
      }
      if (!fits(kind, tag)) return undefined
      applied[kind]++
      connection.lastCorruptedMs = Date.now()
      plan.next = (plan.next + 1) % CORRUPTIONS.length
      return kind
    }
    return undefined
  }

  const server = net.createServer((client) => {
    const upstream = net.connect(target.port, target.host)
    open.add(client)
    let replication: boolean | undefined
    let pending = Buffer.alloc(0)
    let transaction: Buffer[] = []
    let heldBegin: Buffer | undefined
    const state = { lastCorruptedMs: 0 }

    client.on('data', (chunk: Buffer) => {
      // The startup message names its parameters; a replication session asks for `replication`.
      replication ??= chunk.includes(Buffer.from('replication\0'))
      upstream.write(chunk)
    })
    upstream.on('data', (chunk: Buffer) => {
      if (!replication) {
        client.write(chunk)
        return
      }
      pending = Buffer.concat([pending, chunk])
      while (pending.length >= 5) {
        const length = pending.readUInt32BE(1)
        if (pending.length < 1 + length) break
        const message = pending.subarray(0, 1 + length)
        pending = pending.subarray(1 + length)
        if (message[0] === COPY_DATA && message[5] === XLOG_DATA) onXLogData(Buffer.from(message))
        else client.write(message)
      }
    })

    function onXLogData(frame: Buffer): void {
      const tag = String.fromCharCode(frame[5 + XLOG_HEADER]!)
      if (tag === 'B') transaction = []
      transaction.push(Buffer.from(frame))
      const kind = choose(tag, state)
      const send = (bytes: Buffer) => {
        client.write(bytes)
        if (heldBegin && bytes !== heldBegin) {
          const begin = heldBegin
          heldBegin = undefined
          client.write(begin)
        }
      }
      switch (kind) {
        case undefined:
          send(frame)
          break
        case 'begin-swap':
          heldBegin = frame
          break
        case 'drop-begin':
          break
        case 'replay':
          send(frame)
          for (const again of transaction) client.write(again)
          break
        case 'truncate':
          send(truncated(frame))
          break
        default:
          send(corrupted(frame, kind))
      }
    }

    const drop = () => {
      open.delete(client)
      client.destroy()
      upstream.destroy()
    }
    for (const socket of [client, upstream]) {
      socket.on('error', drop)
      socket.on('close', drop)
    }
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))

  return {
    port: (server.address() as net.AddressInfo).port,
    applied,
    corrupt({ perKind, every, seed }) {
      plan = { perKind, every, random: mulberry32(seed), next: 0 }
    },
    done: () => plan !== undefined && CORRUPTIONS.every((kind) => applied[kind] >= plan!.perKind),
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of open) socket.destroy()
        server.close(() => resolve())
      }),
  }

  function corrupted(frame: Buffer, kind: Corruption): Buffer {
    const at = 5 + XLOG_HEADER // the pgoutput message's first byte
    const random = plan!.random
    switch (kind) {
      case 'tag': {
        const choices = ['I', 'U', 'D', 'B', 'C', 'R', 'T', 'Z'].filter((t) => t.charCodeAt(0) !== frame[at])
        frame[at] = choices[Math.floor(random() * choices.length)]!.charCodeAt(0)
        break
      }
      case 'relation':
        frame.writeUInt32BE((frame.readUInt32BE(at + 1) ^ (1 + Math.floor(random() * 0xfffe))) >>> 0, at + 1)
        break
      case 'count':
        frame.writeInt16BE(frame.readInt16BE(at + 6) + 1 + Math.floor(random() * 3), at + 6)
        break
      case 'kind': {
        const choices = ['t', 'n', 'u', 'x', '\0'].filter((k) => k.charCodeAt(0) !== frame[at + 8])
        frame[at + 8] = choices[Math.floor(random() * choices.length)]!.charCodeAt(0)
        break
      }
      case 'frame-type':
        frame[5] = 0x78 // 'x'
        break
      default:
        throw new Error(`not a byte corruption: ${kind}`)
    }
    return frame
  }

  function truncated(frame: Buffer): Buffer {
    const body = frame.length - (5 + XLOG_HEADER)
    const keep = 5 + XLOG_HEADER + 1 + Math.floor(plan!.random() * (body - 1))
    const cut = Buffer.from(frame.subarray(0, keep))
    cut.writeUInt32BE(keep - 1, 1)
    return cut
  }
}

/** Which frames (by pgoutput tag) a corruption applies to. */
function fits(kind: Corruption, tag: string): boolean {
  switch (kind) {
    case 'relation':
    case 'count':
    case 'kind':
      return CHANGE_TAGS.has(tag)
    case 'begin-swap':
    case 'drop-begin':
      return tag === 'B'
    case 'replay':
      return tag === 'C'
    case 'truncate':
    case 'tag':
    case 'frame-type':
      return true
  }
}

