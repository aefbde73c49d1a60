/**
 * Stopping while a move-in is read (docs/ARCHITECTURE.md I25, I26): replication has stopped, so
 * the stream will never pass the read's snapshot. CI once hung in the router's stop for two
 * minutes: a read still at PostgreSQL when the stop began then waited for the stream for ever.
 * Such a move-in is given up, nothing of it written, as kill -9 would leave it.
 */
import { describe, expect, it } from 'vitest'
import { createLogger } from '../../src/log.js'
import type { Lsn } from '../../src/pg/lsn.js'
import { moveInMessage, type MoveInRead } from '../../src/shapes/subquery/move-in.js'
import { SubqueryCommits } from '../../src/shapes/subquery/subquery-commits.js'
import type { RoutingMark } from '../../src/shapes/unconfirmed-commits.js'
import type { ShapeAppend } from '../../src/storage/shape-log-store.js'
import { RELATIONS, tasksShapeWithSubqueries } from '../support/subquery-tables.js'

const WHERE = `project_id IN (SELECT project_id FROM memberships WHERE user_id = 'u1')`

/** A shape whose move-in reads wait for `answer`, and commits that write to `log`. */
function movingShape() {
  const { shape, subqueries } = tasksShapeWithSubqueries(WHERE)
  let answer: ((read: MoveInRead) => void) | undefined
  subqueries.readMoveIns = () => new Promise<MoveInRead>((resolve) => (answer = resolve))
  const log: ShapeAppend[] = []
  const commits = new SubqueryCommits({
    invalidate: () => undefined,
    mark: () => 0 as RoutingMark,
    missed: () => [],
    commitReleased: (...appends) => {
      log.push(...appends)
      return Promise.resolve()
    },
    maxHeldChanges: 1_000,
    log: createLogger('silent'),
  })
  /** u1 joins project 7 (commit at 100): its tasks move in. */
  const join = () => {
    const append = commits.take(shape, {
      xid: 1_000,
      commitLsn: 100n as Lsn,
      lsnText: '100',
      changes: [{ change: { kind: 'insert', relation: RELATIONS.memberships, record: ['1', '7', 'u1'] }, position: 0 }],
    })
    expect(append).toBeUndefined()
    expect(answer).toBeDefined()
    commits.advance(110n as Lsn)
  }
  /** The read's rows, at a snapshot that shows a transaction the stream has not handed on (it ends at 210). */
  const arrive = () => answer!({ rows: [{ id: '5', project_id: '7', done: 'f' }], visibility: { xmax32: 1_002, inProgress: new Set(), lsn: 210n as Lsn }, lsn: 210n as Lsn, toMessage: moveInMessage })
  return { commits, log, join, arrive }
}

/** Whether `promise` has settled once pending callbacks have run (no timer). */
async function settledSoon(promise: Promise<unknown>): Promise<boolean> {
  let done = false
  void promise.then(() => (done = true))
  for (let i = 0; i < 20 && !done; i++) await new Promise((resolve) => setImmediate(resolve))
  return done
}

describe('stopping while a move-in is read', () => {
  it('ends when the read’s rows arrive after the stop began, and writes nothing of the move-in', async () => {
    const { commits, log, join, arrive } = movingShape()
    join()
    const stopped = commits.settled()
    arrive()
    expect(await settledSoon(stopped)).toBe(true)
    expect(log).toEqual([])
  })

  it('ends when the rows are in and wait for the stream, and writes nothing of the move-in', async () => {
    const { commits, log, join, arrive } = movingShape()
    join()
    arrive()
    await settledSoon(Promise.resolve())
    expect(await settledSoon(commits.settled())).toBe(true)
    expect(log).toEqual([])
  })

  it('writes the move-in once the stream passes its snapshot, after a stop that has ended', async () => {
    const { commits, log, join, arrive } = movingShape()
    // A replication history reset stops the router, then goes on.
    await commits.settled()
    join()
    arrive()
    await settledSoon(Promise.resolve())
    expect(log).toEqual([])
    commits.advance(210n as Lsn)
    await settledSoon(Promise.resolve())
    expect(log.map((append) => append.tx)).toEqual([100n])
    expect(log[0]!.entries.some((entry) => entry.includes('"id":"5"'))).toBe(true)
  })
})
