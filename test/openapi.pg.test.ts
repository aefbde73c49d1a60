/**
 * Real responses (status, headers, bodies) validated against `openapi.yaml`, so the document
 * cannot drift from what the server does.
 */
import { Ajv2020 } from 'ajv/dist/2020.js'
import { readFile } from 'node:fs/promises'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { parse } from 'yaml'
import { Follower } from './support/follower.js'
import { startTestSluice, waitForReplication, type TestSluice } from './support/sluice.js'

type Json = Record<string, unknown>
let sluice: TestSluice
let doc: Json

beforeAll(async () => {
  doc = parse(await readFile(new URL('../openapi.yaml', import.meta.url), 'utf8')) as Json
  sluice = await startTestSluice({ allowShapeDeletion: true, longPollMs: 300 })
  await sluice.db.pool.query(`CREATE TABLE items (id int PRIMARY KEY, title text)`)
  await sluice.db.pool.query(`INSERT INTO items VALUES (1, 'a'), (2, 'b')`)
})

afterAll(async () => {
  await sluice?.close()
})

/** Follows `$ref`s inside the document. */
function deref(node: unknown): unknown {
  if (node && typeof node === 'object' && '$ref' in node) {
    const path = String((node as Json)['$ref']).replace(/^#\//, '').split('/')
    return deref(path.reduce<unknown>((at, key) => (at as Json)[key.replaceAll('~1', '/')], doc))
  }
  return node
}

function operation(path: string, method: string): Json {
  const item = deref((doc['paths'] as Json)[path]) as Json
  const op = item[method.toLowerCase()] as Json | undefined
  if (!op) throw new Error(`${method} ${path} is not documented`)
  return op
}

const ajv = new Ajv2020({ strict: false, allErrors: true })

/** Resolves every `$ref` into a self-contained schema for Ajv. */
function inline(node: unknown, depth = 0): unknown {
  if (depth > 50) return {}
  const resolved = deref(node)
  if (Array.isArray(resolved)) return resolved.map((n) => inline(n, depth + 1))
  if (resolved && typeof resolved === 'object') {
    return Object.fromEntries(Object.entries(resolved).map(([k, v]) => [k, inline(v, depth + 1)]))
  }
  return resolved
}

async function check(path: string, method: string, response: Response): Promise<void> {
  const op = operation(path, method)
  const documented = deref((op['responses'] as Json)[String(response.status)]) as Json | undefined
  expect(documented, `${method} ${path} ${response.status} is not documented`).toBeDefined()
  for (const [name, header] of Object.entries((documented!['headers'] as Json | undefined) ?? {})) {
    const spec = deref(header) as Json
    if (spec['required'] === true) expect(response.headers.get(name), `${name} on ${response.status}`).not.toBeNull()
  }
  const content = documented!['content'] as Json | undefined
  const body = await response.text()
  if (!content || method === 'HEAD' || response.status === 304) return
  const type = (response.headers.get('content-type') ?? '').split(';')[0]!.trim()
  const media = content[type] as Json | undefined
  expect(media, `content-type ${type} of ${response.status} is not documented`).toBeDefined()
  if (type === 'application/json') {
    const validate = ajv.compile(inline(media!['schema']) as object)
    const valid = validate(JSON.parse(body))
    expect(valid, `${method} ${path} ${response.status}: ${ajv.errorsText(validate.errors)}\n${body.slice(0, 500)}`).toBe(true)
  }
}

describe('responses match openapi.yaml', () => {
  it('has schemas strict enough to reject a wrong body', () => {
    const shapeLog = deref((doc['components'] as Json)['responses'] && ((doc['components'] as Json)['responses'] as Json)['ShapeLog']) as Json
    const schema = inline(((shapeLog['content'] as Json)['application/json'] as Json)['schema']) as object
    expect(ajv.compile(schema)([{ headers: { operation: 'upsert' } }])).toBe(false)
    expect(ajv.compile(schema)({ not: 'an array' })).toBe(false)
  })

  it('for the shape log, live requests, errors and the other endpoints', async () => {
    const base = sluice.server.url
    const shape = (q: string) => `${base}/v1/shape?${q}`

    const initial = await fetch(shape('table=items&offset=-1'))
    const handle = initial.headers.get('electric-handle')!
    const offset = initial.headers.get('electric-offset')!
    await check('/v1/shape', 'GET', initial)
    await check('/v1/shape', 'GET', await fetch(shape(`table=items&offset=${offset}&handle=${handle}`)))
    const etag = (await fetch(shape('table=items&offset=-1'))).headers.get('etag')!
    await check('/v1/shape', 'GET', await fetch(shape('table=items&offset=-1'), { headers: { 'if-none-match': etag } }))

    const follower = new Follower(() => `${base}/v1/shape`, { table: 'items' })
    await follower.catchUp()
    const live = fetch(shape(`table=items&offset=${follower.offset}&handle=${follower.handle}&live=true&cursor=1`))
    await sluice.db.pool.query(`INSERT INTO items VALUES (3, 'c')`)
    await check('/v1/shape', 'GET', await live)
    await waitForReplication(sluice)
    await check('/shape', 'GET', await fetch(`${base}/shape?table=items&offset=now`))
    await check('/v1/shape', 'HEAD', await fetch(shape('table=items&offset=-1'), { method: 'HEAD' }))

    await check('/v1/shape', 'GET', await fetch(shape('table=items')))
    await check('/v1/shape', 'GET', await fetch(shape('table=items&offset=0_inf&handle=12345678-1')))
    await check('/v1/shape', 'OPTIONS', await fetch(`${base}/v1/shape`, { method: 'OPTIONS' }))
    await check('/v1/shape', 'GET', await fetch(shape('table=items&offset=-1&log=changes_only&subset__where=id%20%3E%20%241&subset__params=%7B%221%22%3A1%7D&subset__order_by=id&subset__limit=5')))
    await check('/v1/shape', 'GET', await fetch(shape('table=items&offset=-1&subset__limit=5')))
    const post = (body: string) => fetch(shape('table=items&offset=-1'), { method: 'POST', headers: { 'content-type': 'application/json' }, body })
    await check('/v1/shape', 'POST', await post('{"subset":{"where":"id > 1","order_by":"title DESC NULLS LAST","limit":1}}'))
    await check('/v1/shape', 'POST', await post('{"order_by":"nope"}'))
    await check('/v1/shape', 'DELETE', await fetch(shape('table=items'), { method: 'DELETE' }))
    await check('/v1/shape', 'DELETE', await fetch(shape('table=items&handle=12345678-1'), { method: 'DELETE' }))
    await check('/v1/health', 'GET', await fetch(`${base}/v1/health`))
    await check('/metrics', 'GET', await fetch(`${base}/metrics`))
    await check('/openapi.yaml', 'GET', await fetch(`${base}/openapi.yaml`))
  })
})
