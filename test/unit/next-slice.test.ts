import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { resumeLsn } from '../../src/http/last-seen-lsn.js'
import { nextSlice, READ_MODE, WAIT, type LogView, type ReadMode } from '../../src/http/next-slice.js'
import { compareOffsets, parseOffset, type Offset } from '../../src/protocol/offset.js'

// The wire spelling keeps the cases readable: `0_2` is the end of snapshot chunk 2.
function at(text: string): Offset {
  const offset = parseOffset(text)
  if (!offset) throw new Error(`bad offset ${text}`)
  return offset
}

const PROCESSED = 5_000n

function view(after: string, state: { head?: string | undefined; chunkEnd?: string | undefined; snapshotComplete?: boolean; behind?: boolean }): LogView {
  return {
    after: at(after),
    head: state.head === undefined ? undefined : at(state.head),
    chunkEnd: state.chunkEnd === undefined ? undefined : at(state.chunkEnd),
    snapshotComplete: state.snapshotComplete ?? true,
    processed: PROCESSED,
    behind: state.behind ?? false,
  }
}

const { nonLive, longPoll, sse } = READ_MODE

function slice(end: string, complete: boolean, lastSeenLsn?: bigint, hasEntries = true) {
  return { end: at(end), hasEntries, complete, upToDate: lastSeenLsn === undefined ? undefined : { lastSeenLsn } }
}

describe('nextSlice at the start of the log (-1)', () => {
  it('waits for the first snapshot chunk, live or not', () => {
    for (const mode of [nonLive, longPoll, sse]) {
      expect(nextSlice(view('-1', { snapshotComplete: false }), mode, false)).toEqual({ wait: WAIT.snapshot })
    }
  })

  it('answers the first chunk; a long-poll read from -1 never says up-to-date (Electric: its answer keeps a long max-age)', () => {
    const whole = view('-1', { chunkEnd: '0_0', head: '0_0' })
    expect(nextSlice(whole, nonLive, false)).toEqual(slice('0_0', true))
    expect(nextSlice(whole, longPoll, true)).toEqual(slice('0_0', true))
  })

  it('over SSE [sluice], streams the snapshot and says up-to-date at its end, so a page knows it is live', () => {
    expect(nextSlice(view('-1', { chunkEnd: '0_0', head: '0_0' }), sse, false)).toEqual(slice('0_0', true, 1n))
    expect(nextSlice(view('-1', { chunkEnd: '0_0', head: '0_1' }), sse, false)).toEqual(slice('0_0', true))
  })
})

describe('nextSlice inside a snapshot while it is written', () => {
  it('answers each chunk as it closes, without up-to-date', () => {
    const writing = view('0_0', { chunkEnd: '0_1', snapshotComplete: false })
    for (const mode of [nonLive, longPoll, sse]) expect(nextSlice(writing, mode, true)).toEqual(slice('0_1', true))
  })

  it('waits for the next chunk to close, even when not live', () => {
    const open = view('0_1', { snapshotComplete: false })
    for (const mode of [nonLive, longPoll, sse]) expect(nextSlice(open, mode, false)).toEqual({ wait: WAIT.snapshot })
  })

  it('says no up-to-date at a chunk that ends at the head before the snapshot is complete (long-poll said one, SSE did not)', () => {
    // Reachable with a log offset while the snapshot runs: the log's head and boundaries exist already.
    const early = view('5_0', { chunkEnd: '7_3', head: '7_3', snapshotComplete: false })
    expect(nextSlice(early, longPoll, true)).toEqual(slice('7_3', true))
    expect(nextSlice(early, sse, true)).toEqual(slice('7_3', true))
  })
})

describe('nextSlice at or past the last snapshot chunk', () => {
  it('reads the log when it has entries', () => {
    const tail = view('0_2', { head: '30_1' })
    expect(nextSlice(tail, nonLive, false)).toEqual(slice('30_1', false, PROCESSED))
    expect(nextSlice(tail, longPoll, true)).toEqual(slice('30_1', false, 31n))
    expect(nextSlice(view('0_inf', { head: '30_1' }), sse, true)).toEqual(slice('30_1', false, 31n))
  })

  it('is at the head of a shape with no log yet', () => {
    for (const after of ['0_2', '0_7', '0_inf']) {
      const idle = view(after, { head: '0_2' })
      expect(nextSlice(idle, nonLive, false)).toEqual(slice(after, false, PROCESSED, false))
      expect(nextSlice(idle, longPoll, true)).toEqual({ wait: WAIT.change })
      expect(nextSlice(idle, sse, true)).toEqual({ wait: WAIT.change })
      // A snapshot offset's own LSN is 1: the SSE client resumes from `1_0`, before every change.
      expect(nextSlice(idle, sse, false)).toEqual(slice(after, false, 1n, false))
    }
  })
})

describe('nextSlice at the head', () => {
  const head = view('30_1', { head: '30_1' })

  it('answers a non-live read with an empty up-to-date carrying the LSN processed', () => {
    expect(nextSlice(head, nonLive, false)).toEqual(slice('30_1', false, PROCESSED, false))
  })

  it('makes a live long-poll wait, and after its timeout answers as a non-live read', () => {
    expect(nextSlice(head, longPoll, true)).toEqual({ wait: WAIT.change })
    expect(nextSlice(head, longPoll, false)).toEqual(slice('30_1', false, PROCESSED, false))
  })

  it('over SSE, waits once the client knows it is live, else answers an up-to-date with its own LSN', () => {
    expect(nextSlice(head, sse, true)).toEqual({ wait: WAIT.change })
    expect(nextSlice(head, sse, false)).toEqual(slice('30_1', false, 31n, false))
  })

  it('answers the open tail with an up-to-date: its own LSN when live, at least the LSN processed when not', () => {
    const behind = view('30_1', { head: '40_0' })
    expect(nextSlice(behind, nonLive, false)).toEqual(slice('40_0', false, PROCESSED))
    expect(nextSlice(behind, longPoll, true)).toEqual(slice('40_0', false, 40n))
    expect(nextSlice(behind, sse, true)).toEqual(slice('40_0', false, 40n))
    expect(nextSlice(view('30_1', { head: '9000_0' }), nonLive, false)).toEqual(slice('9000_0', false, 9000n))
  })
})

describe('nextSlice on a chunk boundary', () => {
  it('answers a complete chunk short of the head without up-to-date', () => {
    const midway = view('30_1', { chunkEnd: '40_2', head: '50_0' })
    for (const mode of [nonLive, longPoll, sse]) expect(nextSlice(midway, mode, true)).toEqual(slice('40_2', true))
  })

  it('at the head: up-to-date for a live read; a non-live one keeps the chunk the same bytes forever (I7)', () => {
    const boundary = view('30_1', { chunkEnd: '40_2', head: '40_2' })
    expect(nextSlice(boundary, nonLive, false)).toEqual(slice('40_2', true))
    expect(nextSlice(boundary, longPoll, true)).toEqual(slice('40_2', true, 41n))
    expect(nextSlice(boundary, sse, true)).toEqual(slice('40_2', true, 41n))
  })

  it('at the head of a complete snapshot: up-to-date for a live read', () => {
    const last = view('0_1', { chunkEnd: '0_2', head: '0_2' })
    expect(nextSlice(last, longPoll, true)).toEqual(slice('0_2', true, 1n))
    expect(nextSlice(last, nonLive, false)).toEqual(slice('0_2', true))
  })
})

describe('nextSlice over any view', () => {
  const offset = fc.oneof(
    fc.constant('-1'),
    fc.nat(3).map((op) => `0_${op}`),
    fc.constant('0_inf'),
    fc.tuple(fc.integer({ min: 1, max: 4 }), fc.nat(3)).map(([tx, op]) => `${tx * 10}_${op}`),
  )
  const mode = fc.constantFrom<ReadMode>(nonLive, longPoll, sse)
  // Views storage can give: a chunk ends after the position, a log chunk at or before the head.
  const views = fc
    .record({ after: offset, head: fc.option(offset, { nil: undefined }), chunkEnd: fc.option(offset, { nil: undefined }), snapshotComplete: fc.boolean() })
    .map((state) => view(state.after, state))
    .filter((v) => (!v.head || compareOffsets(v.head, v.after) >= 0 || v.head.tx <= 0n) && (!v.chunkEnd || compareOffsets(v.chunkEnd, v.after) > 0))
    .filter((v) => !v.chunkEnd || v.chunkEnd.tx <= 0n || (v.head !== undefined && compareOffsets(v.chunkEnd, v.head) <= 0))

  it('never moves back, says up-to-date only at the head of a complete snapshot, keeps non-live chunks free of it, and keeps I16', () => {
    fc.assert(
      fc.property(views, mode, fc.boolean(), (v, m, waitAtHead) => {
        const next = nextSlice(v, m, waitAtHead)
        if ('wait' in next) return
        expect(compareOffsets(next.end, v.after)).toBeGreaterThanOrEqual(0)
        expect(next.hasEntries).toBe(compareOffsets(next.end, v.after) !== 0)
        expect(next.complete).toBe(v.chunkEnd !== undefined)
        if (!next.upToDate) return
        expect(v.snapshotComplete).toBe(true)
        expect(next.end).toEqual(next.hasEntries ? v.head : v.after)
        if (m === nonLive) expect(next.complete).toBe(false)
        // I16: `<lsn>_0` is not before the end (nothing read twice), and the LSN is no later than
        // storage has seen (a change still to come is above both the end and the LSN processed).
        const lsn = next.upToDate.lastSeenLsn
        expect(compareOffsets({ tx: lsn, op: 0 }, next.end)).toBeGreaterThanOrEqual(0)
        expect(lsn <= PROCESSED || lsn <= resumeLsn(next.end)).toBe(true)
      }),
    )
  })
})

describe('nextSlice in a worker whose feed is behind the reader', () => {
  // Another worker answered a chunk that closes inside transaction 7000; this one's head is 6000.
  const behind = view('7000_2', { head: '6000_0', behind: true })

  it('says no up-to-date, which would show the client half of its transaction (I4)', () => {
    // Nothing to wait for (not live, or a long-poll past its deadline or aborted): nothing, no up-to-date.
    for (const mode of [nonLive, longPoll]) expect(nextSlice(behind, mode, false)).toEqual(slice('7000_2', false, undefined, false))
    // A waiting reader waits for the feed; SSE always does.
    expect(nextSlice(behind, longPoll, true)).toEqual({ wait: WAIT.change })
    for (const waitAtHead of [false, true]) expect(nextSlice(behind, sse, waitAtHead)).toEqual({ wait: WAIT.change })
  })

  it('answers as at the head once it has taken the transaction in', () => {
    const caughtUp = nextSlice(view('7000_2', { head: '6000_0' }), nonLive, false)
    expect(caughtUp).toMatchObject({ end: at('7000_2'), hasEntries: false })
    expect('upToDate' in caughtUp && caughtUp.upToDate).toBeTruthy()
  })
})
