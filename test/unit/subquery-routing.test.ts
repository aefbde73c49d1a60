/**
 * Outer-table changes reach a shape with subqueries by index (docs/ARCHITECTURE.md I29): with
 * `project_id IN (SELECT …)` needed by every alternative, a task change is looked up by its
 * project among each shape's subquery values, so with 1,000 per-user shapes it reaches the one
 * shape whose user is a member, not all 1,000; a value entering a result routes from the
 * transaction that brings it in, and one that left stops routing.
 */
import { describe, expect, it } from 'vitest'
import { createLogger } from '../../src/log.js'
import { lsn } from '../../src/pg/lsn.js'
import type { Change, Transaction } from '../../src/replication/transaction.js'
import { ActiveShape } from '../../src/shapes/active-shape.js'
import type { ShapeNotifier } from '../../src/shapes/shape-notifier.js'
import { ShapeRouter } from '../../src/shapes/shape-router.js'
import { moveInMessage } from '../../src/shapes/subquery/move-in.js'
import { ShapeSubqueries } from '../../src/shapes/subquery/shape-subqueries.js'
import { compileWhere } from '../../src/shapes/where/compile-where.js'
import type { ShapeLogStore } from '../../src/storage/shape-log-store.js'
import { SHOWS_NONE, storedShape } from '../support/items-table.js'
import { RELATIONS, TABLES, TASKS } from '../support/subquery-tables.js'

const SHAPES = 1_000

function setUp(where: (user: number) => string) {
  const store = {
    durableLsn: 0n,
    committedLsn: 0n,
    commit: async () => ({ durable: Promise.resolve() }),
    stage: async () => {},
    discardStaged: () => {},
    flushed: async () => {},
  } as unknown as ShapeLogStore
  const router = new ShapeRouter({
    store,
    notifier: { notify: () => {} } as unknown as ShapeNotifier,
    acknowledge: () => {},
    invalidate: (_shape, reason) => {
      throw new Error(`nothing here ends a shape: ${reason}`)
    },
    onStorageFailure: (error) => {
      throw error
    },
    maxHeldChanges: 1_000_000,
    log: createLogger('silent'),
  })
  /** Transactions each shape was handed, by user. */
  const handed = new Array<number>(SHAPES).fill(0)
  for (let user = 0; user < SHAPES; user++) {
    const compiled = compileWhere(where(user), () => undefined, TASKS, TABLES)
    const subqueries = new ShapeSubqueries(compiled, TASKS, `h${user}`, undefined as never)
    subqueries.dependencies[0]!.load({ id: String(user), project_id: String(user), user_id: `u${user}` })
    subqueries.readMoveIns = async () => ({ rows: [], visibility: SHOWS_NONE, lsn: 0n, toMessage: moveInMessage })
    const finish = subqueries.finish.bind(subqueries)
    subqueries.finish = (tx) => {
      handed[user]!++
      return finish(tx)
    }
    const shape = ActiveShape.waiting(storedShape(user + 1, TASKS, compiled.canonical), { table: TASKS, where: compiled }, subqueries)
    router.add(shape)
    router.snapshotStarted(shape, SHOWS_NONE)
    shape.passSnapshot()
    shape.completeSnapshot()
  }
  let at = 0
  const commit = async (...changes: Change[]) => {
    at++
    const tx: Transaction = { xid: 1_000 + at, commitLsn: lsn(BigInt(at * 100)), endLsn: lsn(BigInt(at * 100 + 10)), changes }
    handed.fill(0)
    await router.onTransaction(tx)
    await router.flushed()
    return handed.flatMap((count, user) => (count > 0 ? [user] : []))
  }
  return { commit }
}

const task = (id: number, project: number): Change => ({ kind: 'insert', relation: RELATIONS.tasks, record: [String(id), String(project), 'f'] })
const member = (id: number, project: number, user: number): Change => ({
  kind: 'insert',
  relation: RELATIONS.memberships,
  record: [String(id), String(project), `u${user}`],
})
const leave = (id: number, project: number, user: number): Change => ({
  kind: 'delete',
  relation: RELATIONS.memberships,
  old: [String(id), String(project), `u${user}`],
})

describe('routing outer-table changes to shapes with subqueries', () => {
  it('by the subquery values: a task change reaches the members’ shapes only', async () => {
    const { commit } = setUp((user) => `project_id IN (SELECT project_id FROM memberships WHERE user_id = 'u${user}')`)
    expect(await commit(task(1, 7))).toEqual([7])
    // User 3 joins project 500 and a task of it comes in the same transaction, another after.
    expect(await commit(task(2, 500), member(5_000, 500, 3))).toEqual([3, 500])
    expect(await commit(task(3, 500))).toEqual([3, 500])
    // User 3 leaves it: its changes stop reaching that shape.
    expect(await commit(leave(5_000, 500, 3))).toEqual([3])
    expect(await commit(task(4, 500))).toEqual([500])
  })

  it('every change still reaches a shape whose where holds without the subquery', async () => {
    const { commit } = setUp((user) => `done OR project_id IN (SELECT project_id FROM memberships WHERE user_id = 'u${user}')`)
    expect(await commit(task(1, 7))).toHaveLength(SHAPES)
  })

  it('not by a subquery with one nested in it: its values come in only once its rows are read', () => {
    const routeOf = (where: string) => new ShapeSubqueries(compileWhere(where, () => undefined, TASKS, TABLES), TASKS, 'h', undefined as never).outerRoute
    const members = `SELECT project_id FROM memberships WHERE user_id = 'u1'`
    expect(routeOf(`project_id IN (${members})`)).toBeDefined()
    expect(routeOf(`project_id IN (SELECT project_id FROM memberships WHERE project_id IN (${members}))`)).toBeUndefined()
  })
})
