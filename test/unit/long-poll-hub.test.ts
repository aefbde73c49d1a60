/**
 * Parked long-polls (`src/http/long-poll-hub.ts`, docs/ARCHITECTURE.md I23) through
 * `app.request()` with a Node response and no socket, over the shape logs in memory: what the
 * hub writes when a parked poll's deadline passes.
 */
import { IncomingMessage, ServerResponse } from 'node:http'
import { Socket } from 'node:net'
import { describe, expect, it } from 'vitest'
import { ITEMS, memoryApp } from '../support/memory-app.js'

interface Written {
  readonly status: number
  readonly headers: Record<string, unknown>
  readonly body: unknown
}

/** A Node response whose answer the test can await: the hub writes to it, not to the Hono response. */
function nodeEnv() {
  const incoming = new IncomingMessage(new Socket())
  const outgoing = new ServerResponse(incoming)
  const written = new Promise<Written>((resolve) => {
    let status = 0
    let headers: Record<string, unknown> = {}
    outgoing.writeHead = ((code: number, fields: Record<string, unknown>) => {
      status = code
      headers = fields
      return outgoing
    }) as typeof outgoing.writeHead
    outgoing.end = ((body: Buffer) => {
      resolve({ status, headers, body: JSON.parse(body.toString()) })
      return outgoing
    }) as typeof outgoing.end
  })
  return { env: { incoming, outgoing }, written }
}

describe('parked long-polls', () => {
  it('answers each poll its own shape at the deadline, when polls of two shapes wait at the same offset', async () => {
    const { app, log, shapes } = memoryApp({ longPollMs: 50 })
    const all = await shapes.getOrCreate({ table: ITEMS.table, replica: 'default', log: 'full' }, ITEMS)
    const some = await shapes.getOrCreate({ table: ITEMS.table, replica: 'default', log: 'changes_only' }, ITEMS)
    shapes.completeSnapshot(all, [])
    shapes.completeSnapshot(some, [])
    const first = nodeEnv()
    const second = nodeEnv()
    const parked = await app.request(`/v1/shape?table=items&offset=0_0&handle=${all.stored.handle}&live=true`, {}, first.env)
    await app.request(`/v1/shape?table=items&offset=0_0&handle=${some.stored.handle}&live=true&log=changes_only`, {}, second.env)
    expect(log.waiting(all.stored.id)).toBe(1)
    expect(log.waiting(some.stored.id)).toBe(1)
    // Written but not announced: only the deadline round reads it.
    log.append(all.stored.id, '100_0', { key: '"public"."items"/"1"', value: { id: '1' }, headers: { operation: 'insert' } })

    const [toAll, toSome] = await Promise.all([first.written, second.written])
    expect(parked.status).toBe(200)
    expect(toAll.status).toBe(200)
    expect(toAll.headers).toMatchObject({ 'electric-handle': all.stored.handle, 'electric-offset': '100_0', 'electric-has-data': 'true' })
    expect(toAll.body).toEqual([{ key: '"public"."items"/"1"', value: { id: '1' }, headers: { operation: 'insert' } }, expect.objectContaining({ headers: expect.objectContaining({ control: 'up-to-date' }) })])
    expect(toSome.status).toBe(200)
    expect(toSome.headers).toMatchObject({ 'electric-handle': some.stored.handle, 'electric-offset': '0_0', 'electric-has-data': 'false' })
    expect(toSome.body).toEqual([expect.objectContaining({ headers: expect.objectContaining({ control: 'up-to-date' }) })])
  })
})
