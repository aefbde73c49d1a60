/**
 * cached: one complete chunk (whose bytes never change) requested by many clients at once,
 * against a raw `node:http` server answering the same status, headers and bytes.
 */
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { chunkUrl, getChunk, type ChunkResponse } from './support/chunk-follower.js'
import { generateLoad, loadTool } from './support/load-generator.js'
import type { ScenarioContext } from './support/scenario.js'
import { startBenchSluice } from './support/sluice.js'
import { createItemsTable, insertItems } from './support/table.js'
import { formatNumber, type BenchRow } from './support/report.js'
import { benchRows, FULL_ROWS, progress } from './support/timing.js'

const CHUNK_BYTES = 64 * 1024
const CONNECTIONS = 100
const ROUNDS = 3

export async function runCachedBench(ctx: ScenarioContext): Promise<BenchRow[]> {
  const seconds = benchRows() >= FULL_ROWS ? 8 : 3
  const db = await ctx.cluster.createDatabase('bench_cached')
  await createItemsTable(db.pool)
  await insertItems(db.pool, 1, 2_000)
  const sluice = await startBenchSluice(db, { chunkBytes: CHUNK_BYTES })
  try {
    // The second chunk: a complete one, addressed by handle and offset like a CDN would cache it.
    const first = await getChunk(chunkUrl(sluice.shapeUrl(), { table: 'items' }, { offset: '-1' }))
    const handle = first.headers['electric-handle']!
    const url = chunkUrl(sluice.shapeUrl(), { table: 'items' }, { offset: first.headers['electric-offset']!, handle })
    const chunk = await getChunk(url)
    if (chunk.status !== 200 || chunk.headers['electric-up-to-date'] !== undefined) throw new Error('expected a complete chunk')
    const raw = await serveBytes(chunk)
    try {
      const rawUrl = `http://127.0.0.1:${(raw.address() as AddressInfo).port}/`
      progress(`${loadTool()}: ${CONNECTIONS} connections, ${seconds} s per run, chunk of ${chunk.body.length} bytes; warm-up`)
      await generateLoad(rawUrl, CONNECTIONS, 1)
      await generateLoad(url.href, CONNECTIONS, 1)
      let best = { raw: 0, sluice: 0, errors: 0 }
      for (let round = 1; round <= ROUNDS; round++) {
        const r = await generateLoad(rawUrl, CONNECTIONS, seconds)
        const s = await generateLoad(url.href, CONNECTIONS, seconds)
        progress(`round ${round}: raw ${formatNumber(r.requestsPerSecond)} req/s, Sluice ${formatNumber(s.requestsPerSecond)} req/s`)
        best = { raw: Math.max(best.raw, r.requestsPerSecond), sluice: Math.max(best.sluice, s.requestsPerSecond), errors: best.errors + r.errors + s.errors }
      }
      return [
        {
          scenario: 'cached',
          measure: `one complete ${Math.round(chunk.body.length / 1024)} KiB chunk, ${CONNECTIONS} keep-alive clients (${loadTool()}, best of ${ROUNDS} × ${seconds} s)`,
          value: best.sluice,
          unit: 'req/s',
          baseline: { label: 'raw node:http, same bytes', value: best.raw, unit: 'req/s' },
          goal: { on: 'ratio', op: '>=', target: 0.7 },
          ...(best.errors > 0 ? { note: `${best.errors} errors or non-2xx` } : {}),
        },
      ]
    } finally {
      await new Promise((resolve) => raw.close(resolve))
    }
  } finally {
    await sluice.close()
    await db.drop()
  }
}

/** A bare server that answers every request with the recorded response. */
function serveBytes(response: ChunkResponse): Promise<Server> {
  const skip = new Set(['connection', 'keep-alive', 'transfer-encoding', 'date', 'content-length'])
  const headers: Record<string, string> = { 'content-length': String(response.body.length) }
  for (const [name, value] of Object.entries(response.headers)) if (!skip.has(name)) headers[name] = value
  const server = createServer((_req, res) => {
    res.writeHead(response.status, headers)
    res.end(response.body)
  })
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)))
}
