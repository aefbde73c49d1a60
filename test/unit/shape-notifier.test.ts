import { getEventListeners } from 'node:events'
import { describe, expect, it } from 'vitest'
import { ShapeNotifier } from '../../src/shapes/shape-notifier.js'

describe('ShapeNotifier', () => {
  it('keeps one abort listener per signal however many waiters share it, and aborting ends them all', async () => {
    const notifier = new ShapeNotifier()
    const stop = new AbortController()
    const waits = Array.from({ length: 50 }, (_, shapeId) => notifier.wait(shapeId, 60_000, stop.signal))
    expect(getEventListeners(stop.signal, 'abort')).toHaveLength(1)
    notifier.notify(7)
    expect(await waits[7]).toBe(true)
    stop.abort()
    expect(await Promise.all(waits)).toEqual(waits.map((_, i) => i === 7))
    expect(notifier.waiting(3)).toBe(0)
  })

  it('answers at once on a signal that is already aborted', async () => {
    const notifier = new ShapeNotifier()
    const wait = notifier.wait(1, 1_000, AbortSignal.abort())
    expect(notifier.waiting(1)).toBe(0)
    expect(await wait).toBe(false)
  })
})
