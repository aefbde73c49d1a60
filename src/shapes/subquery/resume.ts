/**
 * A stored shape with subqueries, resumed after a restart (docs/ARCHITECTURE.md I25). Its
 * subqueries' results lived in memory, so the shape joins the router as a new one does (its
 * transactions held, I2) and takes a snapshot: the results are read again in it with the
 * shape's rows, and the differences between those rows and what a client holds at the log's end
 * are appended as one transaction (`resync.ts`); then the held transactions are merged by the
 * snapshot's xid rule (I3), as after a first snapshot.
 *
 * That transaction goes at the durable LSN the server started from, D: above every entry of the
 * log and every `global_last_seen_lsn` it answered (at most D − 1, I16), and below every
 * transaction still to come with changes (its change records come after D, before its commit).
 * A log that already reaches D (a restart with no WAL since the last) cannot take it: the shape
 * ends and its clients refetch.
 *
 * The transaction ends with the snapshot's `snapshot-end`: the transactions it folds in (the
 * snapshot shows them, so they are skipped) carry no txid of their own, and a client waiting for
 * one of its writes (TanStack DB's `awaitTxId`) takes it as seen once a snapshot it has read
 * shows it, as after a first snapshot (docs/ARCHITECTURE.md I25). The messages' own `txids` stay
 * `[0]`, no transaction's: they are the sum of many.
 *
 * A shape of only changes (`log=changes_only`) is not resumed: its clients hold the rows their
 * subsets loaded, which its log does not tell, so what changed while Sluice was down (a task
 * renamed in a project the user still belongs to, a row that moved out of it) cannot be put as a
 * difference, and the transactions the snapshot shows would be skipped: it ends and its clients
 * refetch.
 */
import type { Logger } from '../../log.js'
import type { Lsn } from '../../pg/lsn.js'
import { CONTROL } from '../../protocol/constants.js'
import { BEFORE_ALL } from '../../protocol/offset.js'
import type { ShapeAppend, ShapeLogStore, SnapshotInfo } from '../../storage/shape-log-store.js'
import type { ActiveShape } from '../active-shape.js'
import type { ChangeMessage } from '../change-encoder.js'
import { qualifiedName } from '../../pg/sql.js'
import { LOG_MODES } from '../shape-definition.js'
import type { SnapshotScheduler } from '../snapshot-batch.js'
import { visibilityOf, type Visibility } from '../xid-visibility.js'
import { loggedRows } from './logged-rows.js'
import { resyncMessages } from './resync.js'

export interface ResumeDeps {
  readonly store: Pick<ShapeLogStore, 'head' | 'read'>
  readonly snapshots: Pick<SnapshotScheduler, 'run'>
  /** Routed transactions this snapshot misses (it is taken again), as for a new shape. */
  readonly missedCommits: (visibility: Visibility) => readonly number[]
  /** Appends the differences, then merges the held transactions (`ShapeRouter.resynced`). */
  readonly resynced: (visibility: Visibility, append: ShapeAppend | undefined) => void
  readonly log: Logger
}

/** Resumes `shape` (waiting for its snapshot); false when it cannot be (the caller drops it). */
export async function resumeShape(shape: ActiveShape, durable: Lsn, deps: ResumeDeps, signal: AbortSignal): Promise<boolean> {
  const subqueries = shape.subqueries!
  const { id } = shape.stored
  if (shape.stored.definition.log !== LOG_MODES.full) {
    deps.log.info({ handle: shape.stored.handle }, 'a shape with subqueries of only changes cannot take what changed while Sluice was down; its clients refetch')
    return false
  }
  const head = deps.store.head(id)
  const rows: Buffer[] = []
  let info: SnapshotInfo | undefined
  const outcome = await deps.snapshots.run(
    {
      table: shape.table,
      whereSql: shape.where?.sql,
      rows: true,
      tableKey: `${shape.table.oid}:${qualifiedName(shape.table.table)}`,
      batchable: false,
      key: shape.stored.definitionKey,
      headersSql: subqueries.rowHeadersSql,
      sink: {
        missedCommits: (info) => {
          if (shape.dropped) throw new Error('shape dropped during its snapshot')
          return deps.missedCommits(visibilityOf(info))
        },
        onRetake: () => (rows.length = 0),
        inSnapshot: (client) => subqueries.load(client),
        onSnapshotInfo: (taken) => (info = taken),
        onRows: async (batch) => void rows.push(...batch),
      },
    },
    signal,
  )
  if (!outcome || shape.dropped) return false
  if ('left' in outcome) throw outcome.left
  const messages = resyncMessages(loggedRows(head ? deps.store.read(id, BEFORE_ALL, head) : []), rows.map((row) => JSON.parse(row.toString('utf8')) as ChangeMessage), {
    lsn: String(durable),
    xid: 0,
    relation: [shape.table.table.schema, shape.table.table.name],
    primaryKey: shape.table.primaryKey,
    replica: shape.stored.definition.replica,
  })
  const stale = head !== undefined && head.tx >= durable
  if (messages.length > 0 && stale) {
    deps.log.info({ handle: shape.stored.handle }, 'a shape with subqueries cannot take its differences after a restart with no WAL since the last; its clients refetch')
    return false
  }
  // With no WAL since the last start, no transaction was folded in: nothing to say.
  const end = { headers: { control: CONTROL.snapshotEnd, xmin: info!.xmin, xmax: info!.xmax, xip_list: info!.xip } }
  const append = stale ? undefined : { shapeId: id, tx: durable, firstOp: 0, entries: [...messages, end].map((message) => JSON.stringify(message)) }
  deps.resynced(visibilityOf(info!), append)
  deps.log.info({ handle: shape.stored.handle, differences: messages.length }, 'shape with subqueries resumed')
  return true
}
