/**
 * A wake-up of `src/http/sse-hub.ts` over the shape logs in memory, on responses that record what
 * reaches their socket: what one round costs (reads of the log) and writes, which is the cost of
 * live fan-out (docs/ARCHITECTURE.md I37).
 */
import type { ServerResponse } from 'node:http'
import { afterEach, describe, expect, it } from 'vitest'
import { SseHub } from '../../src/http/sse-hub.js'
import { SSE_FRAMING, type SseFraming } from '../../src/http/sse-events.js'
import type { Offset } from '../../src/protocol/offset.js'
import { ITEMS, MemoryShapes } from '../support/memory-app.js'
import { at, MemoryShapeLog } from '../support/memory-shape-log.js'
import { waitFor } from '../support/wait.js'

/** Counts what a round asks of the log: a `head` per slice decided, a `read` per slice read. */
class CountingLog extends MemoryShapeLog {
  heads = 0
  reads = 0

  override head(shapeId: number): Offset | undefined {
    this.heads++
    return super.head(shapeId)
  }

  override read(shapeId: number, after: Offset, upTo: Offset): Buffer[] {
    this.reads++
    return super.read(shapeId, after, upTo)
  }
}

/** A response whose socket keeps every write. */
function response(): { res: ServerResponse; writes: Buffer[] } {
  const writes: Buffer[] = []
  const socket = { destroyed: false, write: (bytes: Buffer) => writes.push(bytes) > 0, once: () => socket }
  const res = { socket, destroyed: false, once: () => res, end: () => res }
  return { res: res as unknown as ServerResponse, writes }
}

const change = (id: number) => ({ key: `"public"."items"/"${id}"`, value: { id: String(id) }, headers: { operation: 'insert' } })

let hub: SseHub | undefined
afterEach(() => hub?.close())

async function following(framings: readonly SseFraming[], from: string) {
  const log = new CountingLog()
  const shapes = new MemoryShapes(log)
  const shape = await shapes.getOrCreate({ table: ITEMS.table, replica: 'default', log: 'full' }, ITEMS)
  shapes.completeSnapshot(shape, [])
  log.append(shape.stored.id, from, change(1))
  hub = new SseHub({ store: log, notifier: log })
  const streams = framings.map((framing) => {
    const { res, writes } = response()
    hub!.open(shape, at(from), framing, res)
    return writes
  })
  // The EventSources were told they are live on opening; nothing more until a change.
  for (const writes of streams) writes.length = 0
  log.heads = 0
  log.reads = 0
  return { log, id: shape.stored.id, streams }
}

describe('SSE wake-ups', () => {
  it('read the log once per position and framing however many connections wait there, and write each the same bytes', async () => {
    const framings = [...Array<SseFraming>(50).fill(SSE_FRAMING.electric), ...Array<SseFraming>(50).fill(SSE_FRAMING.eventSource)]
    const { log, id, streams } = await following(framings, '100_0')
    log.append(id, '200_0', change(2))
    log.notify(id)
    await waitFor(() => expect(streams.every((writes) => writes.length === 1)).toBe(true))

    const electric = streams[0]![0]!
    const eventSource = streams[50]![0]!
    expect(electric.toString()).toMatch(/^data: \{"key":"\\"public\\"\.\\"items\\"\/\\"2\\"".*\n\ndata: \{"headers":\{"control":"up-to-date","global_last_seen_lsn":"200"\}\}\n\n$/)
    expect(eventSource.toString()).toContain('\nid: ')
    for (const writes of streams.slice(0, 50)) expect(writes[0]).toBe(electric)
    for (const writes of streams.slice(50)) expect(writes[0]).toBe(eventSource)
    // One slice decided and read per framing; a connection that reached the head looks no further
    // in that round (the head moves only between turns).
    expect(log.reads).toBe(2)
    expect(log.heads).toBe(2)
  })

  it('carry a connection past a complete chunk to the head in the same round', async () => {
    const { log, id, streams } = await following([SSE_FRAMING.electric], '100_0')
    log.append(id, '150_0', change(2))
    log.closeChunk(id, '150_0')
    log.append(id, '200_0', change(3))
    log.notify(id)
    await waitFor(() => expect(streams[0]!.length).toBe(2))

    const [chunk, tail] = streams[0]!.map(String)
    // The chunk is not the head: no up-to-date inside it (docs/ARCHITECTURE.md I4).
    expect(chunk).toContain('\\"2\\"')
    expect(chunk).not.toContain('up-to-date')
    expect(tail).toContain('\\"3\\"')
    expect(tail).toContain('"control":"up-to-date"')
  })
})
