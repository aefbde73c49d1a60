/**
 * A bare HTTP client of a shape log: follows `electric-offset` from chunk to chunk over one
 * keep-alive connection until `electric-up-to-date`, counting bytes without parsing them (the
 * COPY baselines do not parse their rows either).
 */
import { Agent, request } from 'node:http'

export interface FollowResult {
  readonly handle: string
  readonly offset: string
  readonly requests: number
  readonly bytes: number
}

export interface FollowFrom {
  readonly offset: string
  readonly handle?: string
}

export interface ChunkResponse {
  readonly status: number
  readonly headers: Record<string, string>
  readonly body: Buffer
}

const sharedAgent = new Agent({ keepAlive: true, maxSockets: 1 })

/** A client's own keep-alive connection: requests on one agent wait for each other. */
export function connectionAgent(): Agent {
  return new Agent({ keepAlive: true, maxSockets: 1 })
}

/** `agent`: the connection to send on (default one shared by every caller, so one request at a time). */
export function getChunk(url: URL, agent: Agent = sharedAgent): Promise<ChunkResponse> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent }, (res) => {
      const parts: Buffer[] = []
      res.on('data', (part: Buffer) => parts.push(part))
      res.on('error', reject)
      res.on('end', () => {
        const headers: Record<string, string> = {}
        for (const [name, value] of Object.entries(res.headers)) {
          if (value !== undefined) headers[name] = Array.isArray(value) ? value.join(', ') : value
        }
        resolve({ status: res.statusCode ?? 0, headers, body: Buffer.concat(parts) })
      })
    })
    req.on('error', reject)
    req.end()
  })
}

export function chunkUrl(shapeUrl: string, params: Record<string, string>, from: FollowFrom): URL {
  const url = new URL(shapeUrl)
  for (const [k, v] of Object.entries(params)) url.searchParams.set(k, v)
  url.searchParams.set('offset', from.offset)
  if (from.handle) url.searchParams.set('handle', from.handle)
  return url
}

/** Follows a shape from `from` until up to date; non-live requests only. */
export async function followToUpToDate(shapeUrl: string, params: Record<string, string>, from: FollowFrom = { offset: '-1' }, agent?: Agent): Promise<FollowResult> {
  let offset = from.offset
  let handle = from.handle
  let requests = 0
  let bytes = 0
  for (;;) {
    const response = await getChunk(chunkUrl(shapeUrl, params, handle ? { offset, handle } : { offset }), agent)
    requests++
    if (response.status !== 200) throw new Error(`shape request answered ${response.status}: ${response.body.toString().slice(0, 200)}`)
    bytes += response.body.length
    handle = response.headers['electric-handle'] ?? handle
    offset = response.headers['electric-offset'] ?? offset
    if (response.headers['electric-up-to-date'] !== undefined) return { handle: handle!, offset, requests, bytes }
  }
}
