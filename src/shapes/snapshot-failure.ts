/**
 * What a failed snapshot means for its shape's clients, logged for the operator. A table changed
 * under the shape is not a 400: the table is there, just not the one the shape was bound to, so
 * its clients get a 409 and refetch against the table as it is now. An error PostgreSQL would
 * raise again for the same snapshot is a 400, not a 409 to refetch into it. Anything else is a
 * 409, and the next request takes the snapshot again.
 */
import { InvalidRequestError } from '../errors.js'
import type { Logger } from '../log.js'
import { permanentSqlState } from '../pg/permanent-errors.js'
import { PARAMS } from '../protocol/constants.js'
import type { StoredShape } from '../storage/shape-log-store.js'
import { TableChangedError } from './snapshot.js'

export type SnapshotFailure =
  | { readonly kind: 'table-changed' }
  | { readonly kind: 'permanent'; readonly error: InvalidRequestError }
  | { readonly kind: 'transient' }

export function snapshotFailure(error: unknown, stored: StoredShape, log: Logger): SnapshotFailure {
  const message = (error as Error).message
  if (error instanceof TableChangedError) {
    log.info({ handle: stored.handle, reason: message }, 'snapshot found its table changed; the shape is dropped and its clients refetch')
    return { kind: 'table-changed' }
  }
  const sqlState = permanentSqlState(error)
  if (sqlState) {
    const param = stored.definition.where === undefined ? PARAMS.table : PARAMS.where
    log.warn({ handle: stored.handle, err: message, sqlState }, 'snapshot failed for good; its clients get 400')
    return { kind: 'permanent', error: InvalidRequestError.of(param, `PostgreSQL could not take this shape's snapshot: ${message} (SQLSTATE ${sqlState})`) }
  }
  log.error({ handle: stored.handle, err: message }, 'snapshot failed; the shape is dropped and will be recreated on the next request')
  return { kind: 'transient' }
}
