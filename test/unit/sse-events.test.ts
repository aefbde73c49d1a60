import { describe, expect, it } from 'vitest'
import { encodeEvents, formatEventId, parseEventId, retryField, sseCacheControl, sseFramingOf } from '../../src/http/sse-events.js'
import type { ShapeHandle } from '../../src/shapes/shape-handle.js'

const HANDLE = '3f2a9c1b-1732623456789000' as ShapeHandle

describe('SSE event text', () => {
  it('writes one data event per message, the id on the last', () => {
    const text = encodeEvents([Buffer.from('{"a":1}'), Buffer.from('{"b":2}')], `${HANDLE}:7_0`).toString()
    expect(text).toBe(`data: {"a":1}\n\nid: ${HANDLE}:7_0\ndata: {"b":2}\n\n`)
    expect(encodeEvents([Buffer.from('{}')], undefined).toString()).toBe('data: {}\n\n')
    expect(encodeEvents([], 'x').length).toBe(0)
  })

  it('writes retry: as a field without an event', () => {
    expect(retryField(1500).toString()).toBe('retry: 1500\n\n')
  })

  it('round-trips event ids, including 0_inf and 64-bit offsets', () => {
    for (const offset of [{ tx: 0n, op: 0xffff_ffff }, { tx: 18446744073709551615n, op: 3 }, { tx: 26848344n, op: 0 }]) {
      expect(parseEventId(formatEventId(HANDLE, offset))).toEqual({ handle: HANDLE, offset })
    }
    expect(formatEventId(HANDLE, { tx: 0n, op: 0xffff_ffff })).toBe(`${HANDLE}:0_inf`)
  })

  it.each([undefined, '', 'nope', `${HANDLE}`, `${HANDLE}:-1`, `${HANDLE}:now`, `XYZ-1:0_0`, `${HANDLE}:1_x`])(
    'ignores the Last-Event-ID %j',
    (text) => expect(parseEventId(text)).toBeUndefined(),
  )

  it('gives SSE responses max-age = timeout − 1 s, never negative', () => {
    expect(sseCacheControl(60_000)).toBe('public, max-age=59')
    expect(sseCacheControl(500)).toBe('public, max-age=0')
  })
})

describe('sseFramingOf', () => {
  it('gives Electric framing to what @electric-sql/client sends: cursor, from a handle and offset', () => {
    expect(sseFramingOf({ tx: 26848344n, op: 0 }, '3363271', undefined)).toBe('electric')
    expect(sseFramingOf({ tx: 0n, op: 0xffff_ffff }, '', undefined)).toBe('electric')
  })

  it('keeps the EventSource extensions for -1, now, Last-Event-ID and a request without cursor', () => {
    expect(sseFramingOf({ tx: -1n, op: 0 }, '1', undefined)).toBe('eventSource')
    expect(sseFramingOf('now', '1', undefined)).toBe('eventSource')
    expect(sseFramingOf({ tx: 26848344n, op: 0 }, '1', `${HANDLE}:26848344_0`)).toBe('eventSource')
    expect(sseFramingOf({ tx: 26848344n, op: 0 }, undefined, undefined)).toBe('eventSource')
  })
})
