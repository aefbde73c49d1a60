/**
 * Move-ins against a model (docs/ARCHITECTURE.md I25, I26): random transactions over tasks and
 * memberships go through a subquery shape's commits one by one, while the move-ins' reads resolve
 * at random points, each at a snapshot that shows every transaction routed before it asked and
 * maybe later ones, some of those still "in progress" (their backends not yet out of the proc
 * array, as a row lock's later holders are too). Whenever a reader could look, a tag-aware client
 * that has read the whole log must hold exactly the rows PostgreSQL would answer at the shape's
 * processed position: no message may name a row the client does not hold.
 */
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { createLogger } from '../../src/log.js'
import type { Lsn } from '../../src/pg/lsn.js'
import type { Change } from '../../src/replication/transaction.js'
import { relationPrefix, rowKey } from '../../src/shapes/row-key.js'
import { moveInMessage, type MoveIn, type MoveInRead, type NestedMoves } from '../../src/shapes/subquery/move-in.js'
import { SubqueryCommits } from '../../src/shapes/subquery/subquery-commits.js'
import type { RoutingMark } from '../../src/shapes/unconfirmed-commits.js'
import type { Row } from '../../src/shapes/where/evaluate.js'
import type { Visibility } from '../../src/shapes/xid-visibility.js'
import type { ShapeAppend } from '../../src/storage/shape-log-store.js'
import { RELATIONS, TASKS, tasksShapeWithSubqueries } from '../support/subquery-tables.js'
import { TaggedRows } from '../support/tagged-rows.js'


const MEMBERS = `project_id IN (SELECT project_id FROM memberships WHERE user_id = 'u1')`
const WHERES = [
  MEMBERS,
  `done OR ${MEMBERS}`,
  `project_id NOT IN (SELECT project_id FROM memberships WHERE user_id = 'u1')`,
  `${MEMBERS} OR id IN (SELECT project_id FROM memberships WHERE user_id = 'u2')`,
  // The projects of every user who is a member of project 0: a membership can move a user, and so their projects, in and out.
  `project_id IN (SELECT project_id FROM memberships WHERE user_id IN (SELECT user_id FROM memberships WHERE project_id = 0))`,
  // …and of every user who is not: a user leaving the nested result moves their projects in.
  `project_id IN (SELECT project_id FROM memberships WHERE user_id NOT IN (SELECT user_id FROM memberships WHERE project_id = 0))`,
]
const PROJECTS = 4

interface Task {
  readonly id: number
  readonly project: number
  readonly done: boolean
}
interface Membership {
  readonly id: number
  readonly project: number
  readonly user: string
}
interface State {
  readonly tasks: ReadonlyMap<number, Task>
  readonly memberships: ReadonlyMap<number, Membership>
}
type Table = keyof typeof RELATIONS
type Op =
  | { readonly kind: 'insert'; readonly table: Table; readonly row: Task | Membership }
  | { readonly kind: 'update'; readonly table: Table; readonly old: Task | Membership; readonly row: Task | Membership }
  | { readonly kind: 'delete'; readonly table: Table; readonly old: Task | Membership }

/** One transaction: its ops, and the rows (table/id) it locks. */
interface Tx {
  readonly ops: readonly Op[]
  readonly rows: ReadonlySet<string>
}

const tupleOf = (table: Table, row: Task | Membership): string[] =>
  table === 'tasks'
    ? [String(row.id), String(row.project), (row as Task).done ? 't' : 'f']
    : [String(row.id), String(row.project), (row as Membership).user]

function changeOf(op: Op): Change {
  const relation = RELATIONS[op.table]
  switch (op.kind) {
    case 'insert':
      return { kind: 'insert', relation, record: tupleOf(op.table, op.row) }
    case 'update':
      return { kind: 'update', relation, old: tupleOf(op.table, op.old), record: tupleOf(op.table, op.row) }
    case 'delete':
      return { kind: 'delete', relation, old: tupleOf(op.table, op.old) }
  }
}

function applyOps(state: State, ops: readonly Op[]): State {
  const tasks = new Map(state.tasks)
  const memberships = new Map(state.memberships)
  for (const op of ops) {
    const rows = (op.table === 'tasks' ? tasks : memberships) as Map<number, Task | Membership>
    if (op.kind === 'delete') rows.delete(op.old.id)
    else rows.set(op.row.id, op.row)
  }
  return { tasks, memberships }
}

/** The tasks a where selects in `state`, as id → row text. */
function answer(where: string, state: State): Map<string, Row> {
  const projectsOf = (user: string) => new Set([...state.memberships.values()].filter((m) => m.user === user).map((m) => m.project))
  const projects = projectsOf('u1')
  const ids = projectsOf('u2')
  const users = new Set([...state.memberships.values()].filter((m) => m.project === 0).map((m) => m.user))
  const shared = new Set([...state.memberships.values()].filter((m) => users.has(m.user)).map((m) => m.project))
  const unshared = new Set([...state.memberships.values()].filter((m) => !users.has(m.user)).map((m) => m.project))
  const rows = new Map<string, Row>()
  for (const task of state.tasks.values()) {
    const member = projects.has(task.project)
    const selected = [member, task.done || member, !member, member || ids.has(task.id), shared.has(task.project), unshared.has(task.project)][WHERES.indexOf(where)]
    if (selected) rows.set(String(task.id), taskRow(task))
  }
  return rows
}

const taskRow = (task: Task): Row => ({ id: String(task.id), project_id: String(task.project), done: task.done ? 't' : 'f' })
const membershipRow = (m: Membership): Row => ({ id: String(m.id), project_id: String(m.project), user_id: m.user })

/** The rows whose compared column equals a moved tuple's (the model's subqueries compare one column). */
const movedRows = (rows: readonly Row[], moves: readonly MoveIn[]): Row[] =>
  rows.filter((row) =>
    moves.some(({ dependency, tuples }) => {
      const arg = dependency.node.args[0]!
      return arg.kind === 'column' && tuples.some((parts) => parts[0] === row[arg.name])
    }),
  )

/** Random transactions, each of 1–3 ops picked by number against the state they start from. */
function history(initial: State, picks: readonly (readonly number[])[]): Tx[] {
  let state = initial
  let nextId = 1_000
  return picks.map((ops) => {
    const done: Op[] = []
    const rows = new Set<string>()
    for (const pick of ops) {
      const tasks = [...state.tasks.values()]
      const memberships = [...state.memberships.values()]
      const project = pick % PROJECTS
      const user = pick % 5 === 0 ? 'u2' : 'u1'
      let op: Op
      switch (pick % 7) {
        case 0:
        case 1:
          op = { kind: 'insert', table: 'memberships', row: { id: nextId++, project, user } }
          break
        case 2:
          if (memberships.length === 0) continue
          op = { kind: 'delete', table: 'memberships', old: memberships[(pick >> 3) % memberships.length]! }
          break
        case 3:
        case 4: {
          if (tasks.length === 0) continue
          const old = tasks[(pick >> 3) % tasks.length]!
          op = { kind: 'update', table: 'tasks', old, row: pick % 7 === 3 ? { ...old, project } : { ...old, done: !old.done } }
          break
        }
        case 5:
          op = { kind: 'insert', table: 'tasks', row: { id: nextId++, project, done: pick % 2 === 0 } }
          break
        default:
          if (tasks.length === 0) continue
          op = { kind: 'delete', table: 'tasks', old: tasks[(pick >> 3) % tasks.length]! }
      }
      done.push(op)
      rows.add(`${op.table}/${op.kind === 'insert' ? op.row.id : op.old.id}`)
      state = applyOps(state, [op])
    }
    return { ops: done, rows }
  })
}

const commitLsn = (i: number) => BigInt((i + 1) * 100) as Lsn
const endLsn = (i: number) => BigInt((i + 1) * 100 + 10) as Lsn
const xidOf = (i: number) => 1_000 + i

interface Scenario {
  readonly where: string
  readonly tasks: readonly { project: number; done: boolean }[]
  readonly members: readonly number[]
  readonly picks: readonly (readonly number[])[]
  /** Consumed in turn: when reads resolve, and what their snapshots show. */
  readonly choices: readonly number[]
}

const scenarios: fc.Arbitrary<Scenario> = fc.record({
  where: fc.constantFrom(...WHERES),
  tasks: fc.array(fc.record({ project: fc.integer({ min: 0, max: PROJECTS - 1 }), done: fc.boolean() }), { minLength: 1, maxLength: 10 }),
  members: fc.array(fc.integer({ min: 0, max: PROJECTS - 1 }), { maxLength: 2 }),
  picks: fc.array(fc.array(fc.nat({ max: 1 << 12 }), { minLength: 1, maxLength: 3 }), { minLength: 1, maxLength: 14 }),
  choices: fc.array(fc.nat({ max: 1 << 12 }), { minLength: 64, maxLength: 64 }),
})

const flush = async () => {
  for (let i = 0; i < 10; i++) await new Promise((resolve) => setImmediate(resolve))
}

async function run(s: Scenario): Promise<void> {
  const initial: State = {
    tasks: new Map(s.tasks.map((t, i) => [i + 1, { id: i + 1, project: t.project, done: t.done }])),
    memberships: new Map(s.members.map((project, i) => [i + 1, { id: i + 1, project, user: 'u1' }])),
  }
  const txs = history(initial, s.picks)
  const states = [initial]
  for (const tx of txs) states.push(applyOps(states.at(-1)!, tx.ops))
  let choice = 0
  const choose = (n: number) => (n <= 0 ? 0 : s.choices[choice++ % s.choices.length]! % n)

  const { shape, subqueries } = tasksShapeWithSubqueries(s.where)
  if (s.where === WHERES[4] || s.where === WHERES[5]) {
    // The nested subquery's rows (members of project 0), then the rows of the one around it (their users' memberships).
    const [around, nested] = subqueries.dependencies
    const members = [...initial.memberships.values()]
    const users = new Set(members.filter((m) => m.project === 0).map((m) => m.user))
    for (const m of members) if (m.project === 0) nested!.load(membershipRow(m))
    for (const m of members) if (users.has(m.user) === (s.where === WHERES[4])) around!.load(membershipRow(m))
  } else {
    // Initial members are u1's: the first subquery's.
    for (const m of initial.memberships.values()) subqueries.dependencies[0]!.load(membershipRow(m))
  }
  const client = new TaggedRows()
  const prefix = relationPrefix(TASKS.table)
  client.apply(
    [...answer(s.where, initial).values()].map((row) => ({
      key: rowKey(prefix, [row['id']!]),
      value: { ...row },
      headers: { operation: 'insert', ...subqueries.tagsOf(row) },
    })) as never,
  )
  const log: ShapeAppend[] = []
  const appendToLog = (...appends: ShapeAppend[]) => {
    log.push(...appends)
    return Promise.resolve()
  }

  let routed = 0
  /** Set when the shape ends: its clients refetch, which is always right. */
  let invalidated: string | undefined
  /** Move-in reads asked for and not yet answered: when they asked, and how to answer. */
  const reads: { readonly routedAt: number; readonly moves: readonly MoveIn[] | NestedMoves; readonly resolve: (read: MoveInRead) => void }[] = []
  subqueries.readMoveIns = (moves) =>
    new Promise<MoveInRead>((resolve) => {
      reads.push({ routedAt: routed, moves, resolve })
    })
  const commits = new SubqueryCommits({
    invalidate: (_shape, reason) => {
      invalidated = reason
    },
    mark: () => routed as RoutingMark,
    missed: () => [],
    commitReleased: appendToLog,
    maxHeldChanges: 1_000_000,
    log: createLogger('silent'),
  })

  /** Answers a read: a snapshot showing every transaction routed when it asked, maybe more. */
  const answerRead = async () => {
    const read = reads.splice(choose(reads.length), 1)[0]!
    const shows = read.routedAt + choose(txs.length - read.routedAt + 1)
    // Some later ones may still be "in progress", and with them each later one that locked a row they did.
    const running = new Set<number>()
    for (let i = routed; i < shows; i++) {
      const blocked = [...running].some((j) => [...txs[i]!.rows].some((row) => txs[j]!.rows.has(row)))
      if (blocked || choose(4) === 0) running.add(i)
    }
    let state = initial
    for (let i = 0; i < shows; i++) if (!running.has(i)) state = applyOps(state, txs[i]!.ops)
    const at = state
    // Nested moves read the memberships between first, at the same snapshot.
    const moves = typeof read.moves === 'function' ? await read.moves(async (_table, inner) => movedRows([...at.memberships.values()].map(membershipRow), inner)) : read.moves
    const rows = movedRows([...state.tasks.values()].map(taskRow), moves)
    const visibility: Visibility = { xmax32: xidOf(shows), inProgress: new Set([...running].map(xidOf)), lsn: endLsn(shows - 1) }
    read.resolve({ rows, visibility, lsn: endLsn(shows - 1), toMessage: moveInMessage })
  }

  let read = 0
  /** What a reader may see now: every message in the log, up to date at the processed position. */
  const check = () => {
    for (; read < log.length; read++) client.apply(log[read]!.entries.map((entry) => JSON.parse(entry)))
    const held = subqueries.heldFrom
    let through = routed
    while (held !== undefined && through > 0 && commitLsn(through - 1) >= held) through--
    const expected = answer(s.where, states[through]!)
    const actual = new Map([...client.rows.values()].map(({ value }) => [value['id'] as string, { id: value['id'], project_id: value['project_id'], done: value['done'] }]))
    expect(actual, `after ${through} of ${routed} routed transactions`).toEqual(expected)
  }

  while (routed < txs.length || reads.length > 0) {
    if (reads.length > 0 && (routed === txs.length || choose(2) === 0)) await answerRead()
    else {
      const i = routed++
      const append = commits.take(shape, {
        xid: xidOf(i),
        commitLsn: commitLsn(i),
        lsnText: String(commitLsn(i)),
        changes: txs[i]!.ops.map((op, position) => ({ change: changeOf(op), position })),
      })
      if (append) log.push(append)
      commits.advance(endLsn(i))
    }
    await flush()
    if (invalidated !== undefined) {
      // Only where the rows alone cannot tell which the client holds (see `ShapeSubqueries.finish`).
      expect(s.where).toBe(WHERES[3])
      return
    }
    check()
  }
  expect(subqueries.heldFrom).toBeUndefined()
}

describe('move-ins of a shape with subqueries, against a model', () => {
  it('leave every client at PostgreSQL’s answer for the processed position', async () => {
    await fc.assert(fc.asyncProperty(scenarios, run), { numRuns: 2_000 })
  })
})
