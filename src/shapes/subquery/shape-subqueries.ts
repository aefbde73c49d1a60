/**
 * The subquery runtime of one shape (docs/ARCHITECTURE.md I25). It keeps each subquery's result
 * (`Dependency`), loaded in the shape's snapshot transaction and then changed by the inner
 * tables' changes, which the router hands it with the outer table's, whole transactions at a
 * time and under the same snapshot rule (I3). At a transaction's end it encodes the outer
 * changes (old rows against the results before the transaction, new rows against those after),
 * then the moves: `move-out` for values that left a result, `move-in` for values that entered it,
 * with the outer rows they bring in (`move-in.ts`).
 */
import type pg from 'pg'
import { EVENTS, type MoveEvent } from '../../protocol/constants.js'
import type { Lsn } from '../../pg/lsn.js'
import type { Change } from '../../replication/transaction.js'
import type { TableInfo } from '../../pg/introspect.js'
import { encodeChange, type ChangeMessage, type EncodeContext } from '../change-encoder.js'
import type { CompiledWhere } from '../where/compile-where.js'
import type { Row } from '../where/evaluate.js'
import { TupleOverlay, tupleKey, type TupleParts, type TupleSet } from '../where/value-set.js'
import { isVisibleInSnapshot, type Visibility } from '../xid-visibility.js'
import { Dependency, type TupleChanges } from './dependency.js'
import { loadDependencies } from './load.js'
import { queryMoveIns, type MoveIn, type MoveInRead } from './move-in.js'
import { planWhere, type WherePlan } from './plan.js'
import { spliceRows } from './splice-rows.js'
import { rowTagger, rowTagsSql, slotHash, type RowTags } from './tags.js'

export interface EventMessage {
  readonly headers: { readonly event: MoveEvent; readonly patterns: readonly { readonly pos: number; readonly value: string }[] }
}

export type SubqueryMessage = ChangeMessage | EventMessage

/** One routed change of a transaction, in its place. */
export interface TakenChange {
  readonly change: Change
  readonly position: number
}

export interface SubqueryTransaction {
  readonly xid: number
  readonly commitLsn: bigint
  readonly changes: readonly TakenChange[]
  /** The encoding context of this transaction for the shape, without subquery parts. */
  readonly context: EncodeContext
}

/**
 * A transaction's messages for the shape, or why the shape must end. With `moveIn`, values
 * entered a result: the messages are whole only once the rows they bring in are read
 * (`move-in.ts`) and given to `complete`.
 */
export type FinishResult =
  | {
      readonly messages: SubqueryMessage[]
      readonly moveIn?: { readonly moves: readonly MoveIn[]; complete(read: MoveInRead): void }
    }
  | { readonly invalidate: string }

/** A transaction of the shape that waits while a move-in before it is read. */
export interface QueuedTransaction {
  readonly xid: number
  readonly commitLsn: Lsn
  readonly lsnText: string
  readonly changes: readonly TakenChange[]
}

/** Rows a move-in read at a later snapshot than the transaction it belongs to (see `finish`). */
interface PendingMoveIn {
  readonly visibility: Visibility
  readonly lsn: bigint
  /** Per dependency: its tuples as they were before the move, which that snapshot's rows reflect. */
  readonly before: ReadonlyMap<Dependency, ReadonlyMap<string, { parts: TupleParts; present: boolean }>>
  /** The keys of the rows it sent: a transaction the snapshot shows sends nothing more for them. */
  readonly keys: ReadonlySet<string>
}

const NONE: ReadonlySet<string> = new Set()

export class ShapeSubqueries {
  readonly plan: WherePlan
  /** Every subquery, nested ones included. */
  readonly dependencies: readonly Dependency[]
  readonly tagsOf: (row: Row) => RowTags
  readonly headersSql: { readonly tags: string; readonly activeConditions: string }
  readonly #where: CompiledWhere
  readonly #table: TableInfo
  /** The subquery of each plan position (undefined for other conditions). */
  readonly #byPosition: readonly (Dependency | undefined)[]
  readonly #handle: string
  #pending: PendingMoveIn[] = []
  /**
   * While a move-in's rows are read: the commit LSN of its transaction (nothing at or after it is
   * in the shape's log yet) and the shape's transactions that came since, in commit order.
   */
  #moving: { readonly from: Lsn; readonly queued: QueuedTransaction[] } | undefined

  readonly #pool: pg.Pool

  /** `table` is the whole outer table (a where may read columns the shape does not select). */
  constructor(where: CompiledWhere, table: TableInfo, handle: string, pool: pg.Pool) {
    this.#pool = pool
    this.#where = where
    this.#table = table
    this.plan = planWhere(where.typed)
    this.dependencies = where.subqueries.map((node) => new Dependency(node))
    this.#byPosition = this.plan.positions.map((position) =>
      position.kind === 'subquery' ? this.dependencies.find((dependency) => dependency.node === position.node) : undefined,
    )
    this.tagsOf = rowTagger(this.plan, handle)
    this.headersSql = rowTagsSql(this.plan, handle)
    this.#handle = handle
  }

  /** Set while a move-in is read: the shape's log holds nothing at or after this commit LSN yet. */
  get heldFrom(): Lsn | undefined {
    return this.#moving?.from
  }

  /** A move-in of the transaction at `from` is being read: later transactions queue behind it. */
  startMoving(from: Lsn): void {
    this.#moving = { from, queued: this.#moving?.queued ?? [] }
  }

  /** Queues a transaction behind the move-in being read (there must be one). */
  queue(tx: QueuedTransaction): void {
    this.#moving!.queued.push(tx)
  }

  /** The next queued transaction, once a move-in's rows are in. */
  nextQueued(): QueuedTransaction | undefined {
    return this.#moving?.queued.shift()
  }

  get hasQueued(): boolean {
    return (this.#moving?.queued.length ?? 0) > 0
  }

  /** The move is over: its rows and every queued transaction are readable in the log. */
  stopMoving(): void {
    this.#moving = undefined
  }

  /** Whether a TRUNCATE of this table empties a result the shape depends on. */
  reads(table: { readonly schema: string; readonly name: string }): boolean {
    return this.dependencies.some((dependency) => dependency.table.schema === table.schema && dependency.table.name === table.name)
  }

  /** Reads the rows a `finish` result's `moveIn` brings in; `missed` as in `queryMoveIns`. */
  readMoveIns(moves: readonly MoveIn[], missed: (visibility: Visibility) => readonly number[]): Promise<MoveInRead> {
    return queryMoveIns(this.#pool, this.#table, moves, missed)
  }

  /** Reads every subquery's rows in the snapshot's transaction. */
  load(client: pg.PoolClient): Promise<void> {
    return loadDependencies(client, this.dependencies)
  }

  /**
   * Applies a transaction and encodes its messages for the shape. A change in a nested
   * subquery's result ends the shape (what it moves in or out of the outer subquery is not
   * kept), as does a NULL entering or leaving a NOT IN's result (it changes every row).
   */
  finish(tx: SubqueryTransaction): FinishResult {
    const changes = new Map<Dependency, TupleChanges>()
    const outer: { change: Exclude<Change, { kind: 'truncate' }>; position: number }[] = []
    const { schema, name } = this.#table.table
    for (const taken of tx.changes) {
      const change = taken.change
      if (change.kind === 'truncate') continue
      for (const dependency of this.dependencies) {
        if (change.relation.schema !== dependency.table.schema || change.relation.name !== dependency.table.name) continue
        let recorded = changes.get(dependency)
        if (!recorded) changes.set(dependency, (recorded = new Map()))
        dependency.apply(change, recorded)
      }
      if (change.relation.schema === schema && change.relation.name === name) outer.push({ change, position: taken.position })
    }
    const moves = new Map<Dependency, { entered: readonly TupleParts[]; left: readonly TupleParts[] }>()
    for (const [dependency, recorded] of changes) {
      const moved = dependency.moves(recorded)
      if (moved.entered.length === 0 && moved.left.length === 0) continue
      const position = this.#byPosition.indexOf(dependency)
      if (position < 0) return { invalidate: 'the result of a nested subquery changed' }
      const negated = this.plan.positions[position]!.negated
      if (negated && [...moved.entered, ...moved.left].some((parts) => parts.includes(null))) {
        return { invalidate: 'a NULL entered or left the result of a NOT IN subquery' }
      }
      moves.set(dependency, moved)
    }

    const { views: after, covered } = this.#afterViews(tx)
    const before = new Map<Dependency, TupleSet>()
    for (const [dependency, recorded] of changes) {
      const base = after.get(dependency) ?? dependency.set
      before.set(dependency, new TupleOverlay(base, new Map([...recorded].map(([key, { parts, before: present }]) => [key, { parts, present }]))))
    }
    const messages: SubqueryMessage[] = []
    const touched = new Set<string>()
    this.#withViews(after, () => {
      const context: EncodeContext = {
        ...tx.context,
        matches: this.#where.matches,
        matchesOld: (row) => this.#withViews(before, () => this.#where.matches(row)),
        tagsOf: this.tagsOf,
      }
      for (const { change, position } of outer) {
        for (const message of encodeChange(context, change, position)) {
          // A move-in's rows already hold what this transaction did to them.
          if (covered.has(message.key)) continue
          touched.add(message.key)
          messages.push(message)
        }
      }
    })

    const outPatterns: { pos: number; value: string }[] = []
    const inPatterns: { pos: number; value: string }[] = []
    const moveIns: MoveIn[] = []
    for (const [dependency, { entered, left }] of moves) {
      const pos = this.#byPosition.indexOf(dependency)
      const negated = this.plan.positions[pos]!.negated
      const [goingOut, comingIn] = negated ? [entered, left] : [left, entered]
      for (const parts of goingOut) outPatterns.push({ pos, value: slotHash(this.#handle, parts) })
      for (const parts of comingIn) inPatterns.push({ pos, value: slotHash(this.#handle, parts) })
      if (comingIn.length > 0) moveIns.push({ dependency, tuples: comingIn })
    }
    if (outPatterns.length > 0) messages.push({ headers: { event: EVENTS.moveOut, patterns: outPatterns } })
    if (moveIns.length === 0) return { messages: markLast(messages) }
    messages.push({ headers: { event: EVENTS.moveIn, patterns: inPatterns } })
    const complete = (read: MoveInRead) => {
      const afterNow = this.#afterViews(tx).views
      const rows: ChangeMessage[] = []
      for (const row of read.rows) {
        const entered = this.#withViews(afterNow, () => this.#where.matches(row)) && !this.#withViews(before, () => this.#where.matches(row))
        if (entered) rows.push(read.toMessage(row, tx.context, this.tagsOf(row)))
      }
      const keys = new Set(rows.map((row) => row.key))
      messages.splice(0, messages.length, ...spliceRows(messages, rows))
      this.#pending.push({ visibility: read.visibility, lsn: read.lsn, before: beforeMove(moveIns, this.plan, this.#byPosition), keys })
      markLast(messages)
    }
    return { messages, moveIn: { moves: moveIns, complete } }
  }

  /**
   * The results a transaction's rows are evaluated against. A move-in read its rows at a
   * snapshot that may show transactions routed after it: for those, the rows that moved in are
   * already as they leave them, so they are evaluated as if the values had not moved in
   * (their changes are not sent twice). From the first commit past the snapshot's WAL position
   * on, no later transaction can be in it (docs/ARCHITECTURE.md I3).
   */
  #afterViews(tx: SubqueryTransaction): { views: Map<Dependency, TupleSet>; covered: ReadonlySet<string> } {
    this.#pending = this.#pending.filter((pending) => tx.commitLsn < pending.lsn)
    const views = new Map<Dependency, TupleSet>()
    let covered: Set<string> | undefined
    for (const pending of this.#pending) {
      if (!isVisibleInSnapshot(tx.xid, pending.visibility)) continue
      for (const [dependency, present] of pending.before) views.set(dependency, new TupleOverlay(views.get(dependency) ?? dependency.set, present))
      for (const key of pending.keys) (covered ??= new Set()).add(key)
    }
    return { views, covered: covered ?? NONE }
  }

  #withViews<T>(views: ReadonlyMap<Dependency, TupleSet>, run: () => T): T {
    for (const [dependency, view] of views) dependency.node.values.set = view
    try {
      return run()
    } finally {
      for (const dependency of views.keys()) dependency.node.values.set = dependency.set
    }
  }
}

/** The last change of a transaction's part says so (`last`), as the router's do. */
function markLast(messages: SubqueryMessage[]): SubqueryMessage[] {
  const last = messages.findLast((message): message is ChangeMessage => 'key' in message)
  if (last) last.headers.last = true
  return messages
}

function beforeMove(
  moveIns: readonly MoveIn[],
  plan: WherePlan,
  byPosition: readonly (Dependency | undefined)[],
): Map<Dependency, Map<string, { parts: TupleParts; present: boolean }>> {
  const before = new Map<Dependency, Map<string, { parts: TupleParts; present: boolean }>>()
  for (const { dependency, tuples } of moveIns) {
    // A value entering IN was absent before; one leaving NOT IN was present.
    const present = plan.positions[byPosition.indexOf(dependency)]!.negated
    before.set(dependency, new Map(tuples.map((parts) => [tupleKey(parts), { parts, present }])))
  }
  return before
}
