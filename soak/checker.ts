/**
 * The Jepsen-style check. A follower reports its rows at every up-to-date, with the snapshot
 * they were built on and the xid of the last change it applied. Those rows must equal the
 * history's state of the shape at that cut: every transaction up to the last one applied (in
 * commit order), plus every transaction the snapshot saw — not only at the end of the run.
 * An observation is checked after the first history read that started after it, so every
 * transaction it could hold is in the history by then — almost: PostgreSQL streams a commit once
 * its WAL is flushed, a moment before other sessions' snapshots show it, so a client can hold a
 * transaction the next read does not show yet. An observation whose last transaction is unknown
 * waits for later reads before it counts as one that never committed.
 */
import { isInCut, type Cut, type History, type Row, type Version } from './history.js'
import { comparable, type ShapeSpec } from './shapes.js'

export interface Observation {
  readonly follower: string
  readonly spec: ShapeSpec
  readonly handle: string | undefined
  readonly offset: string
  readonly rows: ReadonlyMap<string, Readonly<Record<string, unknown>>>
  readonly snapshotEnd: { xmin: string; xmax: string; xip_list: string[] } | undefined
  readonly lastXid: number | undefined
  readonly at: number
  /** What the client received last, for the report of a violation. */
  readonly trace?: () => string
  /** What the client received for the row with this primary key, for the report of a mismatch. */
  readonly row?: (id: string) => string
  /**
   * The shape's log read again from its start, as text naming these rows' changes in it: whether
   * the log holds a change the client lacks (a delivery fault) or not (the log lost it).
   */
  readonly reread?: (ids: readonly string[]) => Promise<string>
}

/** History versions shown around a cut for each differing row. */
const VERSIONS_BEFORE = 3
const VERSIONS_AFTER = 2
/** History reads an unknown last transaction is waited for before it is reported. */
const UNKNOWN_READS = 3

export const VIOLATION = {
  mismatch: 'state differs from the history at its cut',
  unknownTransaction: 'change of a transaction that never committed',
  duplicate: 'change delivered twice',
  gap: 'change that cannot apply (a gap)',
  notConverged: 'did not reach the final state (lost write or stuck)',
  notRecovered: 'did not recover after a fault',
} as const
export type ViolationKind = keyof typeof VIOLATION

export interface Violation {
  readonly kind: ViolationKind
  readonly follower: string
  readonly shape: string
  /** `<lsn>_<op>` the follower had reached, and where it stands in the commit order. */
  readonly offset: string
  readonly clock: number | undefined
  readonly detail: string
  readonly atMs: number
}

export class Checker {
  readonly violations: Violation[] = []
  checks = 0
  rowsCompared = 0
  /** Followers that reached their final state at the end. */
  finalChecks = 0
  /** Observations without a snapshot to anchor them (a client that never saw one). */
  skipped = 0
  #pending: Observation[] = []
  /** Reads each observation with an unknown last transaction has waited through. */
  readonly #unknownReads = new Map<Observation, number>()
  readonly #rereads: Promise<void>[] = []

  constructor(
    readonly history: History,
    readonly startedAt: number,
  ) {}

  observe(observation: Observation): void {
    this.#pending.push(observation)
  }

  report(violation: Omit<Violation, 'atMs'>): void {
    this.violations.push({ ...violation, atMs: Date.now() - this.startedAt })
  }

  /** Checks every observation made before `readStartedAt` (when the last history read began). */
  checkPending(readStartedAt: number): void {
    const ready = this.#pending.filter((o) => o.at < readStartedAt)
    this.#pending = this.#pending.filter((o) => o.at >= readStartedAt)
    for (const observation of ready) this.#check(observation)
  }

  /** Resolves once every mismatch's re-read of its log is in its violation's detail. */
  async settled(): Promise<void> {
    await Promise.all(this.#rereads)
  }

  /** The rows a follower of `spec` must hold once it has every transaction. */
  finalState(spec: ShapeSpec): Map<string, Row> {
    return this.history.stateAt(spec.table, { clock: this.history.clock, snapshot: undefined }, spec.keep)
  }

  /** Differences between a follower's rows and `expected`, as text (empty when equal). */
  diff(spec: ShapeSpec, rows: ReadonlyMap<string, Readonly<Record<string, unknown>>>, expected: ReadonlyMap<string, Row>): string {
    return this.#differences(spec, rows, expected).text
  }

  /** The text of `diff`, and the ids it names. */
  #differences(spec: ShapeSpec, rows: ReadonlyMap<string, Readonly<Record<string, unknown>>>, expected: ReadonlyMap<string, Row>): { text: string; ids: string[] } {
    const problems: string[] = []
    const ids: string[] = []
    const seen = new Set<string>()
    let missing = 0
    let extra = 0
    let differ = 0
    for (const row of rows.values()) {
      const id = String(row['id'])
      seen.add(id)
      const want = expected.get(id)
      if (!want) {
        if (extra++ < 3) {
          problems.push(`id ${id} should not be there: ${comparable(spec, row)}`)
          ids.push(id)
        }
      } else if (comparable(spec, want) !== comparable(spec, row)) {
        if (differ++ < 3) {
          problems.push(`id ${id} is ${comparable(spec, row)}, expected ${comparable(spec, want)}`)
          ids.push(id)
        }
      }
    }
    for (const [id, want] of expected) {
      if (!seen.has(id) && missing++ < 3) {
        problems.push(`id ${id} missing: ${comparable(spec, want)}`)
        ids.push(id)
      }
    }
    if (problems.length === 0) return { text: '', ids }
    return { text: `${rows.size} rows, expected ${expected.size} (${missing} missing, ${extra} extra, ${differ} different): ${problems.join('; ')}`, ids }
  }

  /** One differing row: what the client received for it beside the history's versions around the cut. */
  #explain(observation: Observation, cut: Cut, id: string): string {
    const { spec } = observation
    const { versions, resets } = this.history.versionsOf(spec.table, id)
    const last = versions.findLastIndex((v) => isInCut(v, cut))
    const shown = versions.slice(Math.max(0, last + 1 - VERSIONS_BEFORE), last + 1 + VERSIONS_AFTER)
    const version = (v: Version) => `clock ${v.clock} xid ${v.xid}${isInCut(v, cut) ? '' : ' (after the cut)'}: ${v.row ? comparable(spec, v.row) : 'deleted'}`
    const reset = resets.findLast((r) => isInCut(r, cut))
    const history = [...shown.map(version), ...(reset ? [`table reset at clock ${reset.clock} xid ${reset.xid}`] : [])]
    return `id ${id}: client got ${observation.row?.(id) ?? 'untraced'}; history ${history.length > 0 ? history.join('; ') : 'has no version'}`
  }

  #rereadInto(index: number, reread: NonNullable<Observation['reread']>, ids: readonly string[]): void {
    const add = (text: string) => {
      const violation = this.violations[index]!
      this.violations[index] = { ...violation, detail: `${violation.detail}; log read again: ${text}` }
    }
    this.#rereads.push(reread(ids).then(add, (error: unknown) => add(`failed: ${(error as Error).message}`)))
  }

  #check(observation: Observation): void {
    const { spec, snapshotEnd, lastXid } = observation
    if (!snapshotEnd) {
      this.skipped++
      return
    }
    const clock = lastXid === undefined ? 0 : this.history.clockOf(lastXid)
    const where = { follower: observation.follower, shape: spec.name, offset: `${observation.handle ?? '?'} @ ${observation.offset}` }
    if (clock === undefined) {
      const reads = (this.#unknownReads.get(observation) ?? 0) + 1
      this.#unknownReads.delete(observation)
      if (reads < UNKNOWN_READS) {
        const again = { ...observation, at: Date.now() }
        this.#unknownReads.set(again, reads)
        this.#pending.push(again)
        return
      }
      this.report({ ...where, kind: 'unknownTransaction', clock: undefined, detail: `xid ${lastXid} is not in the history` })
      return
    }
    const cut: Cut = {
      clock,
      snapshot: { xmin: BigInt(snapshotEnd.xmin), xmax: BigInt(snapshotEnd.xmax), xip: new Set(snapshotEnd.xip_list.map((x) => BigInt(x))) },
    }
    const expected = this.history.stateAt(spec.table, cut, spec.keep)
    this.checks++
    this.rowsCompared += expected.size
    const difference = this.#differences(spec, observation.rows, expected)
    if (difference.text) {
      const rows = difference.ids.map((id) => this.#explain(observation, cut, id)).join(' || ')
      const trace = observation.trace ? `; received: ${observation.trace()}` : ''
      const detail = `${difference.text} (snapshot ${JSON.stringify(snapshotEnd)}; cut at clock ${clock}, last xid ${lastXid ?? '-'}); rows: ${rows}${trace}`
      this.report({ ...where, kind: 'mismatch', clock, detail })
      if (observation.reread) this.#rereadInto(this.violations.length - 1, observation.reread, difference.ids)
    }
  }
}
