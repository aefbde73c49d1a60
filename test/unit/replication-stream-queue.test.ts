/**
 * The replication stream's message queue, with the replication library and the slot check
 * replaced by fakes: messages are handled in order, the socket is paused while 10,000 wait and
 * resumed once 1,000 are left, and after a reconnect the old connection's queued messages are
 * dropped while the task it was running finishes first.
 */
import { EventEmitter } from 'node:events'
import { describe, expect, it, vi } from 'vitest'
import { Acknowledgements } from '../../src/replication/acknowledgements.js'
import { drained, waitFor } from '../support/wait.js'

class FakeSocket {
  paused = 0
  resumed = 0
  pause(): void {
    this.paused++
  }
  resume(): void {
    this.resumed++
  }
}

const services: FakeService[] = []
class FakeService extends EventEmitter {
  readonly _connection = { stream: new FakeSocket(), on(): void {} }
  constructor() {
    super()
    services.push(this)
  }
  subscribe(): Promise<void> {
    queueMicrotask(() => this.emit('start'))
    return new Promise(() => {})
  }
  acknowledge(): Promise<boolean> {
    return Promise.resolve(true)
  }
  async destroy(): Promise<this> {
    return this
  }
}

vi.mock('pg-logical-replication', () => ({ LogicalReplicationService: FakeService }))
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

const RELATION = { tag: 'relation', oid: 1, schema: 'public', name: 't', replicaIdentity: 'd', columns: [{ name: 'id', typeOid: 23, isKey: true }] }
const begin = (xid: number) => ({ tag: 'begin', xid, finalLsn: BigInt(xid * 100) })
const insert = (id: string) => ({ tag: 'insert', relationOid: 1, tuple: [id] })
const commit = (xid: number) => ({ tag: 'commit', commitLsn: BigInt(xid * 100), endLsn: BigInt(xid * 100 + 1) })

function transaction(service: FakeService, xid: number): void {
  service.emit('data', '0/0', begin(xid))
  service.emit('data', '0/0', insert(String(xid)))
  service.emit('data', '0/0', commit(xid))
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
    const stream = new ReplicationStream({
      connectionString: 'unused',
      slot: 's',
      publication: 'p',
      resumeFrom: () => 0n as never,
      history: { systemIdentifier: () => '1', adopt: async () => {}, reset: async () => {} },
      sink,
      acknowledgements: new Acknowledgements(),
      log: createLogger('silent'),
    })
    await stream.start()
    const first = services[0]!
    first.emit('data', '0/0', RELATION)
    transaction(first, 1)
    // Commit 1 holds the queue: keepalives pile up behind it until the socket is paused.
    for (let i = 0; i < 10_500; i++) first.emit('heartbeat', '0/5', 0, false)
    expect(first._connection.stream.paused).toBe(1)
    await drained()
    expect(first._connection.stream.resumed).toBe(0)
    release!()
    await waitFor(() => expect(seen.filter((s) => s.startsWith('idle')).length).toBe(10_500))
    expect(first._connection.stream.resumed).toBe(1)

    // The connection breaks while commit 3 is being handled.
    seen.length = 0
    transaction(first, 3)
    for (let i = 0; i < 20; i++) first.emit('heartbeat', '0/6', 0, false)
    await drained()
    first.emit('error', new Error('connection lost'))
    // The stream reconnects after its backoff (250 ms).
    const second = await waitFor(() => services[1] ?? expect.fail('no second connection yet'))
    second.emit('data', '0/0', RELATION)
    transaction(second, 2)
    await drained()
    // Nothing of the new connection before the old task ends, and none of the old queued keepalives.
    expect(seen).toEqual(['begin 3', 'changes 1', 'commit 3'])
    release!()
    await waitFor(() => expect(seen).toEqual(['begin 3', 'changes 1', 'commit 3', 'relation', 'begin 2', 'changes 1', 'commit 2']))
    await stream.stop()
  })
})
