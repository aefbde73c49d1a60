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
import { EVENTS, SUBQUERY_HEADERS, type MoveEvent } from '../../protocol/constants.js'
import type { Lsn } from '../../pg/lsn.js'
import type { Change } from '../../replication/transaction.js'
import type { TableInfo } from '../../pg/introspect.js'
import type { Tuple } from '../../replication/pgoutput-messages.js'
import { encodeChange, toRow, type ChangeMessage, type EncodeContext } from '../change-encoder.js'
import { rowKey } from '../row-key.js'
import type { CompiledWhere } from '../where/compile-where.js'
import type { Row } from '../where/evaluate.js'
import { TupleOverlay, tupleKey, type TupleParts, type TupleSet } from '../where/value-set.js'
import { isVisibleInSnapshot, type Visibility } from '../xid-visibility.js'
import { Dependency, type Moves, type TupleChanges } from './dependency.js'
import { loadDependencies } from './load.js'
import { OuterRoute } from './outer-route.js'
import type { MoveIn, MoveInRead, NestedMoves } from './move-in.js'
import { moveInReadsOf } from './move-in-reads.js'
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
      /** `complete` answers why the shape must end, if the nested moves' rows show it must. */
      readonly moveIn?: { readonly moves: readonly MoveIn[] | NestedMoves; complete(read: MoveInRead): string | undefined }
    }
  | { readonly invalidate: string }

/** A transaction of the shape that waits while a move-in before it is read. */
export interface QueuedTransaction {
  readonly xid: number
  readonly commitLsn: Lsn
  readonly lsnText: string
  readonly changes: readonly TakenChange[]
}

/** Tuple key → its parts and whether a result held it. */
type Presence = ReadonlyMap<string, { readonly parts: TupleParts; readonly present: boolean }>

/**
 * Rows a move-in read at a later snapshot than the transaction it belongs to (see `finish`).
 * `before` is per dependency: the moved tuples as they were before the move, which that
 * snapshot's rows were read without. A tuple leaves it once a later transaction moves it again:
 * from there on the result itself is what the client's rows reflect (docs/ARCHITECTURE.md I26).
 */
interface PendingMoveIn {
  readonly visibility: Visibility
  readonly lsn: bigint
  before: ReadonlyMap<Dependency, Presence>
  /** The keys of the rows it sent: a transaction the snapshot shows sends nothing more for them. */
  readonly keys: ReadonlySet<string>
}

type OuterChange = { readonly change: Exclude<Change, { kind: 'truncate' }>; readonly position: number }

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
  /** How the router finds the outer changes that may concern the shape, when it can (I29). */
  readonly outerRoute: OuterRoute | undefined
  /** Subqueries the where's conditions name (nested ones not counted). */
  readonly #positions: number
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
    this.outerRoute = OuterRoute.of(this.plan, this.#byPosition)
    this.#positions = this.#byPosition.filter((dependency) => dependency !== undefined).length
  }

  /** Set while a move-in is read: the shape's log holds nothing at or after this commit LSN yet. */
  get heldFrom(): Lsn | undefined {
    return this.#moving?.from
  }

  /** SQL of each row's subquery headers, by their wire names (snapshots and subsets compute them in PostgreSQL). */
  get rowHeadersSql(): Readonly<Record<string, string>> {
    return { [SUBQUERY_HEADERS.tags]: this.headersSql.tags, [SUBQUERY_HEADERS.activeConditions]: this.headersSql.activeConditions }
  }

  /** A move-in of the transaction at `from` is being read, and nothing from it on is readable yet: later transactions queue behind it. */
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

  /** Reads the rows a `finish` result's `moveIn` brings in, at a snapshot that `missed` says shows every routed transaction it needs. */
  readMoveIns(moves: readonly MoveIn[] | NestedMoves, missed: (visibility: Visibility) => readonly number[]): Promise<MoveInRead> {
    return moveInReadsOf(this.#pool).read(this.#table, { moves, missed })
  }

  /** Reads every subquery's rows in the snapshot's transaction. */
  load(client: pg.PoolClient): Promise<void> {
    return loadDependencies(client, this.dependencies)
  }

  /**
   * Applies a transaction and encodes its messages for the shape. A change in a nested
   * subquery's result changes which rows the subquery around it selects: those are judged again,
   * with the rows that may now match read first (docs/ARCHITECTURE.md I25), and what that moves
   * is moved as any change of that subquery's table would. A NULL entering or leaving a NOT IN's
   * result, or a nested one's, ends the shape (it changes every row).
   *
   * Its changes are evaluated against the results as the client's rows reflect them
   * (docs/ARCHITECTURE.md I26): a value this transaction moves in counts as absent (the move-in's
   * read brings those rows, as they are at its snapshot), and so does a value an earlier move-in
   * brought, for a transaction that move-in's snapshot shows (its rows already are as it leaves
   * them), until a transaction moves that value again.
   */
  finish(tx: SubqueryTransaction): FinishResult {
    const changes = new Map<Dependency, TupleChanges>()
    const outer: OuterChange[] = []
    const written = new Map<Dependency, Map<string, Row | undefined>>()
    const { schema, name } = this.#table.table
    for (const taken of tx.changes) {
      const change = taken.change
      if (change.kind === 'truncate') continue
      for (const dependency of this.dependencies) {
        if (change.relation.schema !== dependency.table.schema || change.relation.name !== dependency.table.name) continue
        let recorded = changes.get(dependency)
        if (!recorded) changes.set(dependency, (recorded = new Map()))
        let rows = written.get(dependency)
        if (!rows && dependency.nested.length > 0) written.set(dependency, (rows = new Map()))
        dependency.apply(change, recorded, rows)
      }
      if (change.relation.schema === schema && change.relation.name === name) outer.push({ change, position: taken.position })
    }
    if (!this.dependencies.some((dependency) => this.#touchesNested(dependency, changes))) return this.#settle(tx, changes, outer)
    return this.#rejudging(tx, changes, outer, written)
  }

  /** Whether the transaction changed a result nested in `dependency`'s where (so its rows are judged again). */
  #touchesNested(dependency: Dependency, changes: ReadonlyMap<Dependency, TupleChanges>): boolean {
    return dependency.nested.some((node) => (changes.get(this.dependencies.find((candidate) => candidate.node === node)!)?.size ?? 0) > 0)
  }

  /**
   * A transaction that changed a nested subquery's result: the subqueries around it judge their
   * rows again, innermost first. Where a tuple entered or left, the rows it may bring are read,
   * at the snapshot the outer rows are then read at, so the move-in's xid rule (I26) covers them
   * too, and the messages are whole once that read is in; without such a tuple all is known now.
   */
  #rejudging(tx: SubqueryTransaction, changes: Map<Dependency, TupleChanges>, outer: OuterChange[], written: ReadonlyMap<Dependency, ReadonlyMap<string, Row | undefined>>): FinishResult {
    const levels = [...this.dependencies].reverse().filter((dependency) => dependency.nested.length > 0)
    /** Judges one level again with the rows `read`: why the shape ends, or 'read' when a tuple entered or left and no rows are read yet. */
    const judge = (dependency: Dependency, read: readonly Row[] | undefined): string | undefined | 'read' => {
      if (!this.#touchesNested(dependency, changes)) return undefined
      const nested = this.#nestedMoves(dependency, changes)
      if (nested.some(({ tuples }) => tuples.some((parts) => parts.includes(null)))) return 'a NULL entered or left the result of a nested subquery'
      if (nested.length > 0 && !read) return 'read'
      let recorded = changes.get(dependency)
      if (!recorded) changes.set(dependency, (recorded = new Map()))
      const own = [...(written.get(dependency)?.values() ?? [])].filter((row) => row !== undefined)
      dependency.rejudge([...own, ...(read ?? [])], recorded)
      return undefined
    }
    let level = 0
    for (; level < levels.length; level++) {
      const judged = judge(levels[level]!, undefined)
      if (judged === 'read') break
      if (judged !== undefined) return { invalidate: judged }
    }
    if (level === levels.length) return this.#settle(tx, changes, outer)

    const messages: SubqueryMessage[] = []
    let settled: FinishResult = { messages }
    const moves: NestedMoves = async (read) => {
      for (const dependency of levels.slice(level)) {
        const nested = this.#nestedMoves(dependency, changes)
        const judged = judge(dependency, nested.length > 0 ? await read(dependency.node.table, nested) : [])
        if (judged !== undefined) {
          settled = { invalidate: judged }
          return []
        }
      }
      settled = this.#settle(tx, changes, outer)
      return 'messages' in settled && settled.moveIn ? (settled.moveIn.moves as readonly MoveIn[]) : []
    }
    const complete = (read: MoveInRead): string | undefined => {
      if ('invalidate' in settled) return settled.invalidate
      const reason = settled.moveIn?.complete(read)
      // Its rows are as the read's snapshot leaves them, however few moved out here: a later transaction it shows changes them no more.
      if (!settled.moveIn) this.#pending.push({ visibility: read.visibility, lsn: read.lsn, before: new Map(), keys: new Set() })
      messages.push(...settled.messages)
      return reason
    }
    return { messages, moveIn: { moves, complete } }
  }

  /** What changed in the results of the subqueries nested in `dependency`'s where, each as the tuples whose rows may change. */
  #nestedMoves(dependency: Dependency, changes: ReadonlyMap<Dependency, TupleChanges>): MoveIn[] {
    const found: MoveIn[] = []
    for (const node of dependency.nested) {
      const inner = this.dependencies.find((candidate) => candidate.node === node)!
      const recorded = changes.get(inner)
      if (!recorded) continue
      const { entered, left } = inner.moves(recorded)
      if (entered.length + left.length > 0) found.push({ dependency: inner, tuples: [...entered, ...left] })
    }
    return found
  }

  /** A transaction's messages, once every result it changes is known. */
  #settle(tx: SubqueryTransaction, changes: ReadonlyMap<Dependency, TupleChanges>, outer: readonly OuterChange[]): FinishResult {
    const moves = new Map<Dependency, Moves>()
    for (const [dependency, recorded] of changes) {
      const moved = dependency.moves(recorded)
      if (moved.entered.length === 0 && moved.left.length === 0) continue
      const position = this.#byPosition.indexOf(dependency)
      // A nested result's change is in the rows of the subquery around it (`#rejudging`).
      if (position < 0) continue
      const negated = this.plan.positions[position]!.negated
      if (negated && [...moved.entered, ...moved.left].some((parts) => parts.includes(null))) {
        return { invalidate: 'a NULL entered or left the result of a NOT IN subquery' }
      }
      moves.set(dependency, moved)
    }

    const route = this.outerRoute
    const touched = route && changes.get(route.dependency)
    if (touched) route.finished([...touched.values()].map(({ parts }) => parts), tx.commitLsn as Lsn)
    const shown = this.#pendingShowing(tx)
    if (this.#positions > 1 && shown.some((pending) => [...moves.keys()].some((dependency) => !pending.before.has(dependency)))) {
      // Which rows the client holds through the other subquery is no longer known from the rows alone.
      return { invalidate: 'a move-in read at a snapshot that shows a later move of another subquery' }
    }
    const before = overlaid(
      overlaid(new Map(), [...changes].map(([dependency, recorded]) => [dependency, presenceBefore(recorded)] as const)),
      shown.flatMap((pending) => [...pending.before]),
    )
    this.#forgetMoved(moves)
    const after = overlaid(new Map(), shown.flatMap((pending) => [...pending.before]))
    const covered = new Set(shown.flatMap((pending) => [...pending.keys]))

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
    const unmoved = beforeMove(moveIns, this.plan, this.#byPosition)
    const sent = overlaid(after, [...unmoved])

    const events: SubqueryMessage[] = []
    if (outPatterns.length > 0) events.push({ headers: { event: EVENTS.moveOut, patterns: outPatterns } })
    const encode = (views: ReadonlyMap<Dependency, TupleSet>) =>
      this.#withViews(views, () => encodeOuter({ ...tx.context, matches: this.#where.matches, tagsOf: (row) => this.#tagsNow(row) }, outer, (run) => this.#withViews(before, run), covered))
    const sentChanges = encode(sent)
    if (moveIns.length === 0) return { messages: markLast([...sentChanges.flat(), ...events]) }
    events.push({ headers: { event: EVENTS.moveIn, patterns: inPatterns } })
    // A row the move-in brings keeps its own change's operation (the client held it or not); the rest are judged without the values moved.
    const withMoved = encode(after)
    const messages: SubqueryMessage[] = []
    const complete = (read: MoveInRead): undefined => {
      // In with the values moved, and not without them: each view set once for all the rows read.
      const inAfter = this.#withViews(after, () => read.rows.filter((row) => this.#where.matches(row)))
      const entered = this.#withViews(sent, () => inAfter.filter((row) => !this.#where.matches(row)))
      const rows = entered.map((row) => read.toMessage(row, tx.context, this.tagsOf(row)))
      const keys = new Set(rows.map((row) => row.key))
      const changes = withMoved.flatMap((own, i) => (own.some((message) => keys.has(message.key)) ? own : sentChanges[i]!))
      messages.push(...spliceRows([...changes, ...events], rows))
      this.#pending.push({ visibility: read.visibility, lsn: read.lsn, before: unmoved, keys })
      markLast(messages)
      return undefined
    }
    return { messages, moveIn: { moves: moveIns, complete } }
  }

  /**
   * Whether a move-in read so far may show a transaction committed at `commitLsn` or later: its
   * rows must then not be readable before that transaction is (docs/ARCHITECTURE.md I26).
   */
  mayShowFrom(commitLsn: Lsn): boolean {
    return this.#pending.some((pending) => commitLsn < pending.lsn)
  }

  /**
   * The move-ins whose snapshot shows this transaction. From the first commit past a snapshot's
   * WAL position on, no later transaction can be in it (docs/ARCHITECTURE.md I3).
   */
  #pendingShowing(tx: SubqueryTransaction): PendingMoveIn[] {
    this.#pending = this.#pending.filter((pending) => tx.commitLsn < pending.lsn)
    return this.#pending.filter((pending) => isVisibleInSnapshot(tx.xid, pending.visibility))
  }

  /** Tuples a transaction moves again are the results' own from then on, for every move-in. */
  #forgetMoved(moves: ReadonlyMap<Dependency, Moves>): void {
    for (const pending of this.#pending) {
      let changed = false
      const before = new Map(pending.before)
      for (const [dependency, { entered, left }] of moves) {
        const presence = before.get(dependency)
        if (!presence) continue
        const kept = new Map(presence)
        for (const parts of [...entered, ...left]) changed = kept.delete(tupleKey(parts)) || changed
        before.set(dependency, kept)
      }
      if (changed) pending.before = before
    }
  }

  /** A row's tags, with active conditions as the move events the client has had say: every one so far. */
  #tagsNow(row: Row): RowTags {
    const views = this.dependencies.map((dependency) => dependency.node.values.set)
    for (const dependency of this.dependencies) dependency.node.values.set = dependency.set
    try {
      return this.tagsOf(row)
    } finally {
      this.dependencies.forEach((dependency, i) => (dependency.node.values.set = views[i]!))
    }
  }

  /** Runs `run` with the dependencies' views set, and puts back what was set before (views nest). */
  #withViews<T>(views: ReadonlyMap<Dependency, TupleSet>, run: () => T): T {
    const outer = [...views.keys()].map((dependency) => [dependency, dependency.node.values.set] as const)
    for (const [dependency, view] of views) dependency.node.values.set = view
    try {
      return run()
    } finally {
      for (const [dependency, set] of outer) dependency.node.values.set = set
    }
  }
}

/**
 * The messages of each outer change, under the views set. `matchesOld` judges old rows by the
 * results before the transaction, except a row version the transaction itself wrote: that was
 * sent as the results are after it, so its next change is judged so too. Rows a move-in already
 * sent as this transaction leaves them (`covered`) get nothing.
 */
function encodeOuter(
  context: EncodeContext,
  outer: readonly { readonly change: Exclude<Change, { kind: 'truncate' }>; readonly position: number }[],
  inBefore: <T>(run: () => T) => T,
  covered: ReadonlySet<string>,
): ChangeMessage[][] {
  const first: EncodeContext = { ...context, matchesOld: (row) => inBefore(() => context.matches!(row)) }
  const written = new Set<string>()
  return outer.map(({ change, position }) => {
    const names = change.relation.columns.map((column) => column.name)
    const keyOf = (tuple: Tuple) => rowKey(context.keyPrefix, context.primaryKey.map((column) => toRow(names, tuple, undefined)[column] ?? null))
    const old = change.kind === 'insert' ? undefined : keyOf(change.kind === 'delete' ? change.old : (change.old ?? change.record))
    const messages = encodeChange(old !== undefined && written.has(old) ? context : first, change, position).filter((message) => !covered.has(message.key))
    if (change.kind !== 'delete') written.add(keyOf(change.record))
    return messages
  })
}

/** The last change of a transaction's part says so (`last`), as the router's do. */
function markLast(messages: SubqueryMessage[]): SubqueryMessage[] {
  const last = messages.findLast((message): message is ChangeMessage => 'key' in message)
  if (last) last.headers.last = true
  return messages
}

/** Each dependency's view: `views`' own, or its set, with `layers` laid over it in turn. */
function overlaid(views: ReadonlyMap<Dependency, TupleSet>, layers: readonly (readonly [Dependency, Presence])[]): Map<Dependency, TupleSet> {
  const out = new Map(views)
  for (const [dependency, presence] of layers) out.set(dependency, new TupleOverlay(out.get(dependency) ?? dependency.set, presence))
  return out
}

/** The tuples a transaction touched, as they were before it. */
function presenceBefore(recorded: TupleChanges): Presence {
  return new Map([...recorded].map(([key, { parts, before }]) => [key, { parts, present: before }]))
}

function beforeMove(
  moveIns: readonly MoveIn[],
  plan: WherePlan,
  byPosition: readonly (Dependency | undefined)[],
): Map<Dependency, Presence> {
  const before = new Map<Dependency, Presence>()
  for (const { dependency, tuples } of moveIns) {
    // A value entering IN was absent before; one leaving NOT IN was present.
    const present = plan.positions[byPosition.indexOf(dependency)]!.negated
    before.set(dependency, new Map(tuples.map((parts) => [tupleKey(parts), { parts, present }])))
  }
  return before
}
