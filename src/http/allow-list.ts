/** `SLUICE_TABLES`: when set, only the listed tables may be served. */
import { InvalidRequestError } from '../errors.js'
import { PARAMS } from '../protocol/constants.js'
import { qualifiedName } from '../pg/sql.js'
import type { TableName } from '../pg/table-name.js'

export function requireAllowedTable(allowed: readonly TableName[] | undefined, table: TableName): void {
  if (!allowed) return
  if (allowed.some((t) => t.schema === table.schema && t.name === table.name)) return
  throw InvalidRequestError.of(PARAMS.table, `table ${qualifiedName(table)} is not served here (see SLUICE_TABLES)`)
}
