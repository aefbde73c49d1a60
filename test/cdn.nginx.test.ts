/**
 * Sluice behind nginx running `deploy/nginx/sluice.conf` (issue 4, "CDN"): a second `offset=-1`
 * is a cache hit, 100 live clients at one offset cost a handful of origin requests, and an
 * expired entry is revalidated with a 304 from Sluice. Needs nginx (Debian: `apt-get install -y
 * nginx`, done by `.ci/run`); origin requests are counted from Sluice's /metrics.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { connect } from 'node:net'
import { tmpdir, userInfo } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { freePort } from '../src/pg/free-port.js'
import { Follower } from './support/follower.js'
import { startTestSluice, waitForReplication, type TestSluice } from './support/sluice.js'
import { waitFor } from './support/wait.js'

const NGINX = process.env['NGINX_BIN'] ?? '/usr/sbin/nginx'

let sluice: TestSluice
let nginx: ChildProcess | undefined
let dir: string
let cdn: string
let nginxLog = ''

beforeAll(async () => {
  if (!existsSync(NGINX)) throw new Error(`${NGINX} not found: install nginx (apt-get install -y nginx), as .ci/run does`)
  // Non-live responses expire after 1 s and may not be served stale, so revalidation is quick to see.
  sluice = await startTestSluice({ longPollMs: 3_000, cacheMaxAgeSeconds: 1, cacheStaleAgeSeconds: 0 })
  await sluice.db.pool.query(`CREATE TABLE items (id int PRIMARY KEY, title text)`)
  await sluice.db.pool.query(`INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 100) g`)

  dir = await mkdtemp(join(tmpdir(), 'sluice-nginx-'))
  await chmod(dir, 0o755)
  await mkdir(join(dir, 'logs'))
  const port = await freePort()
  const origin = new URL(sluice.server.url)
  const site = substitute(await readFile(new URL('../deploy/nginx/sluice.conf', import.meta.url), 'utf8'), {
    'server sluice:3000;': `server ${origin.host};`,
    'listen 80;': `listen 127.0.0.1:${port};`,
    '/var/cache/nginx/sluice': join(dir, 'cache'),
  })
  await writeFile(join(dir, 'sluice.conf'), site)
  await writeFile(
    join(dir, 'nginx.conf'),
    [
      userInfo().uid === 0 ? 'user root;' : '',
      'worker_processes 1;',
      `error_log ${join(dir, 'logs/error.log')} warn;`,
      'events { worker_connections 1024; }',
      'http {',
      '  access_log off;',
      ...['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((t) => `  ${t}_temp_path ${join(dir, `tmp-${t}`)};`),
      `  include ${join(dir, 'sluice.conf')};`,
      '}',
    ].join('\n'),
  )
  nginx = spawn(NGINX, ['-p', dir, '-c', join(dir, 'nginx.conf'), '-g', `daemon off; pid ${join(dir, 'nginx.pid')};`], {
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  nginx.stdout!.on('data', (c: Buffer) => (nginxLog += c.toString()))
  nginx.stderr!.on('data', (c: Buffer) => (nginxLog += c.toString()))
  cdn = `http://127.0.0.1:${port}`
  await waitForPort(port, () => nginx?.exitCode !== null)
}, 120_000)

afterAll(async () => {
  if (nginx && nginx.exitCode === null) {
    const exited = new Promise((resolve) => nginx!.once('exit', resolve))
    nginx.kill('SIGQUIT')
    await exited
  }
  await sluice?.close()
  if (dir) await rm(dir, { recursive: true, force: true })
})

function substitute(text: string, replacements: Record<string, string>): string {
  for (const [from, to] of Object.entries(replacements)) {
    if (!text.includes(from)) throw new Error(`deploy/nginx/sluice.conf no longer contains ${from}`)
    text = text.replaceAll(from, to)
  }
  return text
}

async function waitForPort(port: number, failed: () => boolean): Promise<void> {
  for (let i = 0; ; i++) {
    if (failed()) throw new Error(`nginx exited:\n${nginxLog}`)
    const open = await new Promise<boolean>((resolve) => {
      const socket = connect(port, '127.0.0.1', () => {
        socket.end()
        resolve(true)
      })
      socket.on('error', () => resolve(false))
    })
    if (open) return
    if (i > 200) throw new Error(`nginx did not listen on ${port}:\n${nginxLog}`)
    await new Promise((resolve) => setTimeout(resolve, 25))
  }
}

/** Responses Sluice has sent, by status (one scrape counts itself in the next one). */
async function originResponses(): Promise<Record<string, number>> {
  const text = await (await fetch(`${sluice.server.url}/metrics`)).text()
  const counts: Record<string, number> = {}
  for (const match of text.matchAll(/^sluice_http_responses_total\{status="(\d+)"\} (\d+)$/gm)) counts[match[1]!] = Number(match[2])
  return counts
}

function total(counts: Record<string, number>): number {
  return Object.values(counts).reduce((a, b) => a + b, 0)
}

describe('nginx in front of Sluice (deploy/nginx/sluice.conf)', () => {
  it('serves a second offset=-1 from its cache', async () => {
    const before = await originResponses()
    const first = await fetch(`${cdn}/v1/shape?table=items&offset=-1`)
    const firstBody = await first.text()
    expect(first.status).toBe(200)
    expect(first.headers.get('x-cache-status')).toBe('MISS')
    const second = await fetch(`${cdn}/v1/shape?table=items&offset=-1`)
    expect(second.status).toBe(200)
    expect(second.headers.get('x-cache-status')).toBe('HIT')
    expect(await second.text()).toBe(firstBody)
    expect(second.headers.get('electric-handle')).toBe(first.headers.get('electric-handle'))
    const after = await originResponses()
    expect(total(after) - total(before) - 1).toBe(1)
  })

  it('collapses 100 concurrent live clients at one offset into a handful of origin requests', async () => {
    const follower = new Follower(() => `${cdn}/v1/shape`, { table: 'items' })
    await follower.catchUp()
    await follower.step({ live: true }) // a first long-poll gives the cursor clients send
    const live = `${cdn}/v1/shape?table=items&handle=${follower.handle}&offset=${follower.offset}&live=true&cursor=${follower.cursor}`

    const before = await originResponses()
    const clients = Array.from({ length: 100 }, () => fetch(live).then(async (r) => ({ status: r.status, body: await r.text() })))
    await new Promise((resolve) => setTimeout(resolve, 500))
    await sluice.db.pool.query(`INSERT INTO items VALUES (1000, 'seen by all')`)
    const answers = await Promise.all(clients)
    const after = await originResponses()

    for (const answer of answers) {
      expect(answer.status).toBe(200)
      expect(answer.body).toContain('seen by all')
    }
    const originRequests = total(after) - total(before) - 1
    expect(originRequests).toBeGreaterThanOrEqual(1)
    expect(originRequests).toBeLessThanOrEqual(3)
  })

  it('revalidates an expired entry with a 304 from Sluice', async () => {
    await waitForReplication(sluice)
    const follower = new Follower(() => `${cdn}/v1/shape`, { table: 'items' })
    await follower.catchUp()
    // Non-live at the head: max-age=1 (SLUICE_CACHE_MAX_AGE), same etag while nothing changes.
    const url = `${cdn}/v1/shape?table=items&handle=${follower.handle}&offset=${follower.offset}`
    const first = await fetch(url)
    const body = await first.text()
    expect(first.headers.get('x-cache-status')).toBe('MISS')
    expect((await fetch(url)).headers.get('x-cache-status')).toBe('HIT')

    // nginx counts whole seconds: an entry with max-age=1 is fresh until the second after next.
    await new Promise((resolve) => setTimeout(resolve, 2_100))
    const before = await originResponses()
    // nginx answers from the expired copy (proxy_cache_use_stale updating + background update)
    // or waits for the revalidation; either way Sluice sees If-None-Match and answers 304.
    const again = await fetch(url)
    expect(again.status).toBe(200)
    expect(['STALE', 'REVALIDATED']).toContain(again.headers.get('x-cache-status'))
    expect(await again.text()).toBe(body)
    await waitFor(async () => {
      const after = await originResponses()
      expect((after['304'] ?? 0) - (before['304'] ?? 0)).toBe(1)
    }, 5_000, 50)
    const refreshed = await fetch(url)
    expect(refreshed.headers.get('x-cache-status')).toBe('HIT')
    expect(await refreshed.text()).toBe(body)
  })

  it('passes Server-Sent Events through at once, uncached and unbuffered', async () => {
    const follower = new Follower(() => `${cdn}/v1/shape`, { table: 'items' })
    await follower.catchUp()
    const controller = new AbortController()
    const response = await fetch(
      `${cdn}/v1/shape?table=items&handle=${follower.handle}&offset=${follower.offset}&live=true&live_sse=true`,
      { signal: controller.signal },
    )
    expect(response.status).toBe(200)
    expect(response.headers.get('content-type')).toMatch(/^text\/event-stream/)
    expect(response.headers.get('x-cache-status')).toBe('BYPASS')
    const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader()
    let received = ''
    const waitForText = async (text: string): Promise<void> => {
      while (!received.includes(text)) {
        const { value, done } = await reader.read()
        if (done) throw new Error(`stream ended before ${text}`)
        received += value
      }
    }
    try {
      // Each small event must arrive on its own, long before any proxy buffer would fill.
      for (const id of [2001, 2002, 2003]) {
        await sluice.db.pool.query(`INSERT INTO items VALUES ($1, $2)`, [id, `sse ${id}`])
        const committed = Date.now()
        await waitForText(`"sse ${id}"`)
        expect(Date.now() - committed).toBeLessThan(1_000)
      }
    } finally {
      controller.abort()
      await reader.cancel().catch(() => undefined)
    }
  })
})
