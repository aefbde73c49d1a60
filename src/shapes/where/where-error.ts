/**
 * `where` errors that point at a place in the clause, in Electric's form and counting, so a
 * client's error handling reads them the same from either server. Electric parses the clause as
 * `SELECT 1 WHERE <clause>`, as we do, and reports:
 * - a syntax error at PostgreSQL's cursor position in that whole statement (1-based, in
 *   characters): `At location 17: syntax error at or near "x"`;
 * - any other error at the offending node's location in the clause itself (0-based, in bytes):
 *   `At location 5: subqueries are not supported`.
 */
import { InvalidRequestError } from '../../errors.js'
import { PARAMS } from '../../protocol/constants.js'

export function whereErrorAt(location: number, reason: string): InvalidRequestError {
  return InvalidRequestError.of(PARAMS.where, `At location ${location}: ${reason}`)
}
