/**
 * What an idle shape keeps (issue #17: ≤ 10 KB resident per shape at 100,000 shapes; `npm run
 * bench -- shapes` measures it): shapes that shared a snapshot share its visibility, every shape
 * of a table names it by the catalog's TableName (not by a string sliced out of its request's URL,
 * which would keep the whole URL), and an equality-only where keeps no evaluator.
 */
import type pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { SHAPE_PHASE, type ActiveShape } from '../src/shapes/active-shape.js'
import type { ShapeDefinition } from '../src/shapes/shape-definition.js'
import type { ShapeHandle } from '../src/shapes/shape-handle.js'
import { canonicalizeWhere } from '../src/shapes/where/compile-where.js'
import { startTestSluice, type TestSluice } from './support/sluice.js'
import { waitFor } from './support/wait.js'

const SHAPES = 30

let sluice: TestSluice

beforeAll(async () => {
  sluice = await startTestSluice({ maxConcurrentSnapshots: 2, snapshotQueueLength: 1_000 })
  await sluice.db.pool.query(`CREATE TABLE orders (id int PRIMARY KEY, user_id int NOT NULL)`)
  await sluice.db.pool.query(`INSERT INTO orders SELECT g, g % ${SHAPES} FROM generate_series(1, ${SHAPES * 2}) g`)
})

afterAll(async () => {
  await sluice?.close()
})

async function create(where: string): Promise<ActiveShape> {
  const response = await fetch(`${sluice.shapeUrl()}?table=orders&offset=-1&where=${encodeURIComponent(where)}`)
  expect(response.status).toBe(200)
  await response.arrayBuffer()
  return sluice.server.manager.byHandle(response.headers.get('electric-handle') as ShapeHandle)!
}

const visibilityOf = (shape: ActiveShape) => {
  const phase = shape.phase
  if (phase.kind !== SHAPE_PHASE.following || phase.merge.kind !== 'filtering') throw new Error(`shape is ${phase.kind}`)
  return phase.merge.visibility
}

describe('an idle shape', () => {
  it('shares what shapes of one snapshot and one table have in common', async () => {
    await create('user_id = -1')
    const locker: pg.PoolClient = await sluice.db.pool.connect()
    let shapes: ActiveShape[]
    try {
      // Held while the requests arrive, so that they queue and share snapshots.
      await locker.query('BEGIN')
      await locker.query('LOCK TABLE orders IN ACCESS EXCLUSIVE MODE')
      const created = Promise.all(Array.from({ length: SHAPES }, (_, user) => create(`user_id = ${user}`)))
      await waitFor(() => expect(sluice.server.manager.snapshotsWaiting).toBe(SHAPES - 2), 60_000)
      await locker.query('COMMIT')
      shapes = await created
    } finally {
      locker.release()
    }
    // Two snapshots were blocked on the lock, the other 28 shared one.
    expect(new Set(shapes.map(visibilityOf)).size).toBe(3)
    expect(new Set(shapes.map((shape) => shape.stored.definition.table)).size).toBe(1)
    expect(shapes.map((shape) => shape.stored.definition.where === shape.where?.canonical)).toEqual(shapes.map(() => true))
    expect(shapes.filter((shape) => 'evaluate' in shape.where!)).toEqual([])
    expect(shapes[7]!.where!.matches({ id: '1', user_id: '7' })).toBe(true)
  })

  it('loaded at a restart, shares them too, and keeps no copy of its table of its own', async () => {
    const handles = [...Array(SHAPES).keys()].map((user) => sluice.server.manager.byDefinition(definitionOf(user))!.stored.handle)
    await sluice.restart()
    const shapes = handles.map((handle) => sluice.server.manager.byHandle(handle)!)
    // Equal snapshots share one (with no write between them, the three were equal).
    expect(new Set(shapes.map(visibilityOf)).size).toBeLessThanOrEqual(3)
    expect(new Set(shapes.map((shape) => shape.stored.definition.table)).size).toBe(1)
    expect(new Set(shapes.map((shape) => shape.table)).size).toBe(1)
    expect(shapes.filter((shape) => shape.stored.table !== undefined || shape.stored.key !== undefined)).toEqual([])
    expect(shapes.filter((shape) => 'evaluate' in shape.where!)).toEqual([])
  })
})

function definitionOf(user: number): ShapeDefinition {
  return { table: { schema: 'public', name: 'orders' }, replica: 'default', log: 'full', where: canonicalizeWhere(`user_id = ${user}`) }
}
