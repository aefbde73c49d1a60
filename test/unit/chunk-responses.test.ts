import type { IncomingMessage, ServerResponse } from 'node:http'
import { describe, expect, it } from 'vitest'
import { ChunkResponses } from '../../src/http/chunk-responses.js'
import { createLogger } from '../../src/log.js'
import { Metrics } from '../../src/metrics.js'
import type { ActiveShape } from '../../src/shapes/active-shape.js'
import type { ShapeManager } from '../../src/shapes/shape-manager.js'

const shape = { stored: { handle: 'h-1' }, dropped: false } as unknown as ActiveShape
const deps = {
  manager: { byHandle: (handle: string) => (handle === 'h-1' ? shape : undefined) } as unknown as ShapeManager,
  secret: undefined,
  metrics: new Metrics(),
  log: createLogger('silent'),
}
const HEADERS = { etag: '"h-1:0_0:0_9"', 'content-type': 'application/json' }
const BODY = Buffer.from('[{"a":1}]')

/** Whether the cache answers `url` (a fake response records the status). */
function answered(cache: ChunkResponses, url: string): number | undefined {
  let status: number | undefined
  const res = { writeHead: (code: number) => ((status = code), res), end: () => res } as unknown as ServerResponse
  const req = { method: 'GET', url, headers: {} } as unknown as IncomingMessage
  return cache.answerer(deps)(req, res) ? status : undefined
}

describe('ChunkResponses', () => {
  it('answers a remembered URL and only that one', () => {
    const cache = new ChunkResponses()
    cache.remember('/v1/shape?table=t&offset=0_0&handle=h-1', shape, HEADERS, BODY)
    expect(answered(cache, '/v1/shape?table=t&offset=0_0&handle=h-1')).toBe(200)
    expect(answered(cache, '/v1/shape?table=t&offset=0_1&handle=h-1')).toBeUndefined()
  })

  it('counts URLs and headers against its size, not only bodies: padded URLs cannot grow it without bound', () => {
    const cache = new ChunkResponses(1024 * 1024)
    const padding = 'x'.repeat(100 * 1024)
    const urls = Array.from({ length: 30 }, (_, i) => `/v1/shape?table=t&offset=0_0&handle=h-1&pad${i}=${padding}`)
    for (const url of urls) cache.remember(url, shape, HEADERS, BODY)
    const kept = urls.filter((url) => answered(cache, url) === 200)
    expect(kept.length).toBeGreaterThan(0)
    expect(kept.length).toBeLessThanOrEqual(10)
    expect(answered(cache, urls.at(-1)!)).toBe(200)
  })
})
