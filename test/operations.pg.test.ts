/**
 * Operating Sluice: the secret, the table allow-list, the live-connection limit, /metrics
 * after traffic, /openapi.yaml, and a SIGTERM that answers waiting long-polls and exits 0.
 */
import { spawn } from 'node:child_process'
import { connect } from 'node:net'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { freePort } from '../src/pg/free-port.js'
import { createTestDatabase, type TestDatabase } from './support/database.js'
import { Follower } from './support/follower.js'
import { startTestSluice, waitForReplication, type TestSluice } from './support/sluice.js'
import { waitFor } from './support/wait.js'

let sluice: TestSluice
const SECRET = 's3cret-value'

beforeAll(async () => {
  // 100-byte chunks: the one row fills the snapshot's chunk 0, and its end message is chunk 1.
  sluice = await startTestSluice({ secret: SECRET, tables: [{ schema: 'public', name: 'open_items' }], maxLiveConnections: 2, longPollMs: 3_000, chunkBytes: 100 })
  await sluice.db.pool.query(`CREATE TABLE open_items (id int PRIMARY KEY, title text)`)
  await sluice.db.pool.query(`CREATE TABLE hidden (id int PRIMARY KEY)`)
  await sluice.db.pool.query(`INSERT INTO open_items VALUES (1, 'a')`)
})

afterAll(async () => {
  await sluice?.close()
})

const url = (query: string) => `${sluice.shapeUrl()}?${query}`

/** Live requests the server at `baseUrl` holds open, from its /metrics. */
async function liveConnections(baseUrl: string): Promise<number> {
  const text = await (await fetch(`${baseUrl}/metrics`)).text()
  return Number(/^sluice_live_connections (\d+)$/m.exec(text)![1])
}

describe('secret', () => {
  it('accepts the right secret as a parameter or bearer token and refuses others', async () => {
    expect((await fetch(url(`table=open_items&offset=-1&secret=${SECRET}`))).status).toBe(200)
    expect((await fetch(url('table=open_items&offset=-1'), { headers: { authorization: `Bearer ${SECRET}` } })).status).toBe(200)
    const wrong = await fetch(url('table=open_items&offset=-1&secret=nope'))
    expect(wrong.status).toBe(401)
    expect(await wrong.json()).toEqual({ message: expect.stringContaining('secret') })
    expect((await fetch(url('table=open_items&offset=-1'))).status).toBe(401)
    expect((await fetch(url('table=open_items&offset=-1'), { headers: { authorization: 'Bearer s3cret-valuX' } })).status).toBe(401)
  })

  it('asks for the secret again on a complete chunk URL it answers from memory', async () => {
    const follower = new Follower(() => sluice.shapeUrl(), { table: 'open_items', secret: SECRET })
    await follower.catchUp()
    const bearer = { authorization: `Bearer ${SECRET}` }
    // The snapshot's last chunk, 0_1: complete, and a handle-addressed URL.
    const chunk = url(`table=open_items&offset=0_0&handle=${follower.handle}`)
    const first = await fetch(chunk, { headers: bearer })
    expect(first.status).toBe(200)
    expect(first.headers.get('electric-up-to-date')).toBeNull()
    expect((await fetch(chunk, { headers: bearer })).status).toBe(200)
    expect((await scrape())['sluice_http_cached_chunk_responses_total']).toBeGreaterThanOrEqual(1)
    expect((await fetch(chunk)).status).toBe(401)
    expect((await fetch(chunk, { headers: { authorization: 'Bearer wrong' } })).status).toBe(401)
    expect((await fetch(`${chunk}&secret=wrong`)).status).toBe(401)
  })
})

describe('SLUICE_TABLES', () => {
  it('serves listed tables only', async () => {
    const response = await fetch(url(`table=hidden&offset=-1&secret=${SECRET}`))
    expect(response.status).toBe(400)
    expect(((await response.json()) as { errors: Record<string, string[]> }).errors['table']![0]).toContain('SLUICE_TABLES')
  })
})

describe('live connection limit', () => {
  it('answers 503 with retry-after beyond SLUICE_MAX_LIVE_CONNECTIONS', async () => {
    const follower = new Follower(() => sluice.shapeUrl(), { table: 'open_items', secret: SECRET })
    await follower.catchUp()
    const live = url(`table=open_items&offset=${follower.offset}&handle=${follower.handle}&live=true&secret=${SECRET}`)
    const controller = new AbortController()
    const held = [fetch(live, { signal: controller.signal }), fetch(live, { signal: controller.signal })]
    await waitFor(async () => expect(await liveConnections(sluice.server.url)).toBe(2))
    const refused = await fetch(live)
    expect(refused.status).toBe(503)
    // Electric's overload answer: a jittered retry-after, and nothing a browser or CDN may keep.
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThanOrEqual(6)
    expect(Number(refused.headers.get('retry-after'))).toBeLessThanOrEqual(10)
    expect(refused.headers.get('cache-control')).toBe('no-store')
    expect(refused.headers.get('surrogate-control')).toBe('no-store')
    expect(await refused.json()).toEqual({ message: expect.stringContaining('SLUICE_MAX_LIVE_CONNECTIONS') })
    controller.abort()
    await Promise.allSettled(held)
  })
})

describe('request limits', () => {
  it('refuses oversized headers, where clauses and parameter numbers', async () => {
    const headers = await fetch(url(`table=open_items&offset=-1&secret=${SECRET}`), { headers: { 'x-big': 'h'.repeat(300 * 1024) } })
    expect(headers.status).toBe(431)
    const where = await fetch(url(`table=open_items&offset=-1&secret=${SECRET}&where=${encodeURIComponent(`title = '${'w'.repeat(11_000)}'`)}`))
    expect(where.status).toBe(400)
    expect(((await where.json()) as { errors: Record<string, string[]> }).errors['where']![0]).toMatch(/long|length|characters/i)
    const param = await fetch(url(`table=open_items&offset=-1&secret=${SECRET}&where=${encodeURIComponent('id = $101')}`))
    expect(param.status).toBe(400)
  })
})

describe('slow and idle clients', () => {
  /** Opens a raw socket, writes `text`, and resolves with what came back once the server closed it. */
  function untilClosed(text: string): Promise<{ data: string; ms: number }> {
    const { port } = new URL(sluice.server.url)
    const started = Date.now()
    return new Promise((resolve, reject) => {
      const socket = connect(Number(port), '127.0.0.1', () => socket.write(text))
      let data = ''
      socket.on('data', (chunk) => (data += chunk.toString()))
      socket.on('error', reject)
      socket.on('close', () => resolve({ data, ms: Date.now() - started }))
      setTimeout(() => {
        socket.destroy()
        reject(new Error('the server kept the socket open'))
      }, 20_000)
    })
  }

  it('cuts a client that never finishes its headers, and closes idle keep-alive sockets', async () => {
    const [slow, idle] = await Promise.all([
      untilClosed('GET /v1/health HTTP/1.1\r\nHost: x\r\n'),
      untilClosed('GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n'),
    ])
    expect(slow.data).toMatch(/^HTTP\/1\.1 408/)
    expect(slow.ms).toBeLessThan(15_000)
    expect(idle.data).toMatch(/^HTTP\/1\.1 200/)
    expect(idle.ms).toBeLessThan(9_000)
  }, 30_000)
})

describe('/metrics and /openapi.yaml', () => {
  it('counts traffic, transactions and appended changes', async () => {
    const before = await scrape()
    await sluice.db.pool.query(`INSERT INTO open_items VALUES (2, 'b'), (3, 'c')`)
    await waitForReplication(sluice)
    await fetch(url(`table=open_items&offset=-1&secret=${SECRET}`))
    await fetch(url('table=open_items&offset=-1&secret=wrong'))
    const after = await scrape()
    expect(after['sluice_transactions_total']!).toBeGreaterThan(before['sluice_transactions_total'] ?? 0)
    expect(after['sluice_changes_appended_total']!).toBeGreaterThanOrEqual((before['sluice_changes_appended_total'] ?? 0) + 2)
    expect(after['sluice_http_responses_total{status="200"}']!).toBeGreaterThan(before['sluice_http_responses_total{status="200"}'] ?? 0)
    expect(after['sluice_http_responses_total{status="401"}']!).toBeGreaterThan(before['sluice_http_responses_total{status="401"}'] ?? 0)
    expect(after['sluice_shapes']).toBeGreaterThanOrEqual(1)
    expect(after['sluice_storage_bytes']).toBeGreaterThan(0)
    expect(after['sluice_replication_lag_bytes']).toBeGreaterThanOrEqual(0)
  })

  it('serves its OpenAPI document', async () => {
    const response = await fetch(`${sluice.server.url}/openapi.yaml`)
    expect(response.status).toBe(200)
    expect(await response.text()).toMatch(/^openapi: 3\.1/m)
  })
})

async function scrape(): Promise<Record<string, number>> {
  const text = await (await fetch(`${sluice.server.url}/metrics`)).text()
  const values: Record<string, number> = {}
  for (const line of text.split('\n')) {
    const match = /^([a-z_]+(?:\{[^}]*\})?) ([0-9.e+-]+)$/.exec(line)
    if (match) values[match[1]!] = Number(match[2])
  }
  return values
}

describe('SIGTERM', () => {
  let db: TestDatabase
  beforeAll(async () => {
    db = await createTestDatabase()
    await db.pool.query(`CREATE TABLE t (id int PRIMARY KEY)`)
  })
  afterAll(async () => {
    await db?.drop()
  })

  it('answers waiting long-polls and exits 0 within 10 s', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'sluice-sigterm-'))
    const port = await freePort()
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
      env: { ...process.env, DATABASE_URL: db.url, PORT: String(port), HOST: '127.0.0.1', SLUICE_DATA_DIR: dataDir, SLUICE_REPLICATION_SLOT: `sigterm_${port}`, SLUICE_PUBLICATION: `sigterm_${port}`, SLUICE_LONG_POLL_MS: '60000', SLUICE_WORKERS: '1', LOG_LEVEL: 'warn' },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let output = ''
    child.stdout.on('data', (c: Buffer) => (output += c.toString()))
    child.stderr.on('data', (c: Buffer) => (output += c.toString()))
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)))
    try {
      const base = `http://127.0.0.1:${port}/v1/shape`
      const follower = new Follower(() => base, { table: 't' })
      for (let i = 0; ; i++) {
        try {
          await follower.catchUp()
          break
        } catch (error) {
          if (i > 200) throw new Error(`server did not come up: ${String(error)}\n${output}`)
          await new Promise((resolve) => setTimeout(resolve, 100))
        }
      }
      const waiting = fetch(`${base}?table=t&offset=${follower.offset}&handle=${follower.handle}&live=true`)
      await waitFor(async () => expect(await liveConnections(`http://127.0.0.1:${port}`)).toBe(1))
      const signalled = Date.now()
      child.kill('SIGTERM')
      const answer = await waiting
      expect(answer.status).toBe(200)
      expect(await answer.json()).toEqual([{ headers: { control: 'up-to-date', global_last_seen_lsn: expect.any(String) } }])
      const code = await Promise.race([exited, new Promise<string>((r) => setTimeout(() => r('timeout'), 10_000))])
      expect(code, output).toBe(0)
      expect(Date.now() - signalled).toBeLessThan(10_000)
    } finally {
      child.kill('SIGKILL')
      await rm(dataDir, { recursive: true, force: true })
      await db.pool.query(`SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name LIKE 'sigterm_%' AND NOT active`)
    }
  })
})
