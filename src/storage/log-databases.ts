/**
 * The LMDB environment that holds every shape log (docs/ARCHITECTURE.md I6): its named databases,
 * the keys of its metadata, and how a failed commit is reported.
 * - `entries`: log entries and snapshot blocks by `log-keys.ts` key, stored as wire JSON;
 * - `boundaries`: a mark at the key of each chunk's last entry (log) or at the chunk's key (snapshot);
 * - `shapes`: each shape's record (`shape-records.ts`);
 * - `tables`: the table descriptions records name, each once (`shape-records.ts`);
 * - `meta`: the LSN, the handle clock, the next shape id, the cluster followed, the layout, and
 *   how many write transactions have committed.
 */
import { open, type Database, type RootDatabase } from 'lmdb'
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import type { TableInfo } from '../pg/introspect.js'
import type { StoredRecord } from './shape-records.js'

export interface LogDatabases {
  readonly root: RootDatabase
  readonly entries: Database<Buffer, Buffer>
  readonly boundaries: Database<Buffer, Buffer>
  readonly shapes: Database<StoredRecord, number>
  readonly tables: Database<TableInfo, string>
  readonly meta: Database<string, string>
}

export const META = {
  durableLsn: 'durableLsn',
  handleClock: 'handleClock',
  nextShapeId: 'nextShapeId',
  systemIdentifier: 'systemIdentifier',
  /** Write transactions committed since the store was created (`write-queue.ts`). */
  writes: 'writes',
  /**
   * Layout of the entries database; 2: snapshot rows in blocks (`snapshot-block.ts`); 3: snapshot
   * blocks keyed by chunk, and log chunks that may end inside a transaction (`log-keys.ts`).
   */
  format: 'format',
} as const
export const FORMAT = '3'
/** The value of a boundary: only its key matters. */
export const MARK = Buffer.of(1)

/**
 * `readOnly`: for a process that reads another's logs (`read-only-shape-log.ts`); it opens the
 * same databases, so both read the same keys and encodings.
 */
export function openLogDatabases(dir: string, access: { readonly readOnly?: boolean } = {}): LogDatabases {
  if (!access.readOnly) mkdirSync(dir, { recursive: true })
  // Without event-turn batching: a batch it starts holds a commit promise that nothing can
  // handle, so a failed commit would end the process unheard (docs/ARCHITECTURE.md I35). Writes
  // are all `transaction`s, grouped by `write-queue.ts`, so nothing else changes.
  const mode = access.readOnly ? { readOnly: true } : { overlappingSync: true, eventTurnBatching: false }
  const root = open({ path: join(dir, 'shapes.lmdb'), maxDbs: 8, compression: false, ...mode })
  return {
    root,
    entries: root.openDB({ name: 'entries', keyEncoding: 'binary', encoding: 'binary' }),
    boundaries: root.openDB({ name: 'boundaries', keyEncoding: 'binary', encoding: 'binary' }),
    shapes: root.openDB({ name: 'shapes', keyEncoding: 'uint32', encoding: 'json' }),
    tables: root.openDB({ name: 'tables', encoding: 'json' }),
    meta: root.openDB({ name: 'meta', encoding: 'string' }),
  }
}

/** Bytes of LMDB pages in use by shape logs and their indexes. */
export function sizeBytes(dbs: LogDatabases): number {
  let bytes = 0
  for (const db of [dbs.entries, dbs.boundaries, dbs.shapes, dbs.tables, dbs.meta]) {
    const stats = db.getStats() as { pageSize: number; treeBranchPageCount: number; treeLeafPageCount: number; overflowPages: number }
    bytes += stats.pageSize * (stats.treeBranchPageCount + stats.treeLeafPageCount + stats.overflowPages)
  }
  return bytes
}

/**
 * lmdb rejects a failed commit with a generic error and the cause (ENOSPC, EIO) in a second
 * promise, `commitError`, which would otherwise end the process as an unhandled rejection
 * before the failure is logged: the error returned carries it as its `cause` (logs show both).
 */
export async function withCommitError(error: unknown): Promise<unknown> {
  const pending = (error as { commitError?: Promise<unknown> } | undefined)?.commitError
  if (!(pending instanceof Promise)) return error
  const cause = await pending.then(() => undefined, (reason: unknown) => reason)
  if (!(cause instanceof Error)) return error
  return Object.assign(new Error('LMDB commit failed', { cause }), { code: (cause as NodeJS.ErrnoException).code })
}
