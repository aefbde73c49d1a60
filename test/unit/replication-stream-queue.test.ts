/**
 * The replication stream's message queue, with the connection (passed in) and the slot check
 * replaced by fakes: messages are handled in order, the socket is paused while 10,000 wait and
 * resumed once 1,000 are left, and after a reconnect the old connection's queued messages are
 * dropped while the task it was running finishes first. Acknowledgements go out as reported.
 */
import { describe, expect, it, vi } from 'vitest'
import type { Lsn } from '../../src/pg/lsn.js'
import { Acknowledgements } from '../../src/replication/acknowledgements.js'
import type { OpenReplicationConnection, ReplicationConnection, ReplicationConnectionEvents } from '../../src/replication/replication-connection.js'
import { beginMessage, commitMessage, insertMessage, relationMessage } from '../support/pgoutput-encode.js'
import { drained, waitFor } from '../support/wait.js'

/** A replication connection whose frames the test sends. */
class FakeConnection implements ReplicationConnection {
  paused = 0
  resumed = 0
  readonly statuses: bigint[] = []
  constructor(readonly events: ReplicationConnectionEvents) {
    queueMicrotask(() => events.onStart())
  }
  sendStatus(durable: bigint): void {
    this.statuses.push(durable)
  }
  pause(): void {
    this.paused++
  }
  resume(): void {
    this.resumed++
  }
  async close(): Promise<void> {}
  message(bytes: Buffer): void {
    this.events.onFrame({ kind: 'xlog', walStart: 0n as Lsn, message: bytes })
  }
  keepalive(walEnd: bigint): void {
    this.events.onFrame({ kind: 'keepalive', walEnd: walEnd as Lsn, replyRequested: false })
  }
}

const connections: FakeConnection[] = []
const openConnection: OpenReplicationConnection = (_start, events) => {
  const connection = new FakeConnection(events)
  connections.push(connection)
  return connection
}

vi.mock('pg', () => ({
  default: {
    Client: class {
      on(): void {}
      async connect(): Promise<void> {}
      async query(): Promise<{ rows: { lsn: string }[] }> {
        return { rows: [{ lsn: '0/10' }] }
      }
      async end(): Promise<void> {}
    },
  },
}))
vi.mock('../../src/replication/slot-check.js', () => ({
  readSlotState: async () => ({ systemIdentifier: '1', slot: { confirmedFlushLsn: 16n, invalidation: undefined, plugin: 'pgoutput' } }),
  slotProblem: () => undefined,
}))

const { ReplicationStream } = await import('../../src/replication/replication-stream.js')
const { createLogger } = await import('../../src/log.js')
type Sink = ConstructorParameters<typeof ReplicationStream>[0]['sink']

const RELATION = relationMessage(1, 't', ['id'])

function transaction(connection: FakeConnection, xid: number): void {
  connection.message(beginMessage(xid, BigInt(xid * 100)))
  connection.message(insertMessage(1, [String(xid)]))
  connection.message(commitMessage(BigInt(xid * 100), BigInt(xid * 100 + 1)))
}

describe('replication stream queue', () => {
  it('pauses and resumes the socket, keeps order, and drops an old connection’s queued messages', async () => {
    const seen: string[] = []
    let release: (() => void) | undefined
    const sink: Sink = {
      onBegin: (b) => void seen.push(`begin ${b.xid}`),
      onChanges: (changes) => void seen.push(`changes ${changes.length}`),
      onCommit: (c) => {
        seen.push(`commit ${c.xid}`)
        if (c.xid === 1 || c.xid === 3) return new Promise<void>((resolve) => (release = resolve))
        return undefined
      },
      onIdle: (lsn) => void seen.push(`idle ${lsn}`),
      onRelation: () => void seen.push('relation'),
    }
    const acknowledgements = new Acknowledgements()
    const stream = new ReplicationStream({
      connectionString: 'unused',
      slot: 's',
      publication: 'p',
      resumeFrom: () => 0n as never,
      history: { systemIdentifier: () => '1', adopt: async () => {}, reset: async () => {} },
      sink,
      acknowledgements,
      log: createLogger('silent'),
      openConnection,
    })
    await stream.start()
    const first = connections[0]!
    first.message(RELATION)
    transaction(first, 1)
    // Commit 1 holds the queue: keepalives pile up behind it until the socket is paused.
    for (let i = 0; i < 10_500; i++) first.keepalive(5n)
    expect(first.paused).toBe(1)
    await drained()
    expect(first.resumed).toBe(0)
    release!()
    await waitFor(() => expect(seen.filter((s) => s.startsWith('idle')).length).toBe(10_500))
    expect(first.resumed).toBe(1)
    expect(seen.at(-1)).toBe('idle 5')

    // What storage reports durable is sent as it is, and never backwards.
    acknowledgements.report(101n as Lsn)
    acknowledgements.report(50n as Lsn)
    expect(first.statuses).toEqual([101n])

    // The connection breaks while commit 3 is being handled.
    seen.length = 0
    transaction(first, 3)
    for (let i = 0; i < 20; i++) first.keepalive(6n)
    await drained()
    first.events.onEnd(new Error('connection lost'))
    // The stream reconnects after its backoff (250 ms).
    const second = await waitFor(() => connections[1] ?? expect.fail('no second connection yet'))
    second.message(RELATION)
    transaction(second, 2)
    await drained()
    // Nothing of the new connection before the old task ends, and none of the old queued keepalives.
    expect(seen).toEqual(['begin 3', 'changes 1', 'commit 3'])
    release!()
    await waitFor(() => expect(seen).toEqual(['begin 3', 'changes 1', 'commit 3', 'relation', 'begin 2', 'changes 1', 'commit 2']))
    await stream.stop()
  })
})
