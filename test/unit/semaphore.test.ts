import { describe, expect, it } from 'vitest'
import { Semaphore } from '../../src/shapes/semaphore.js'

describe('Semaphore', () => {
  it('lets a waiter leave the queue when its signal aborts, and gives the permit to the next', async () => {
    const semaphore = new Semaphore(1)
    const first = await semaphore.acquire()
    const leaving = new AbortController()
    const left = semaphore.acquire(leaving.signal)
    const stillWaiting = new AbortController()
    const next = semaphore.acquire(stillWaiting.signal)
    expect(semaphore.waiting).toBe(2)
    leaving.abort()
    expect(await left).toBeUndefined()
    expect(semaphore.waiting).toBe(1)
    first!()
    const second = await next
    expect(second).toBeTypeOf('function')
    // An abort after the permit was granted changes nothing: the permit stays held.
    stillWaiting.abort()
    expect(semaphore.free).toBe(0)
    expect(semaphore.waiting).toBe(0)
    second!()
    expect(semaphore.free).toBe(1)
    expect(await semaphore.acquire(AbortSignal.abort())).toBeUndefined()
    expect(semaphore.free).toBe(1)
  })
})
