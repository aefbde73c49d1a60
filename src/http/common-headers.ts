/**
 * Headers every response carries, whichever path answers it: the request id (for logs) and
 * CORS, so a browser on another origin can read the protocol headers (docs/PROTOCOL.md: Response headers).
 */
import { randomUUID } from 'node:crypto'
import { EXPOSED_HEADERS } from '../protocol/constants.js'

const EXPOSED = EXPOSED_HEADERS.join(', ')

export function commonHeaders(requestIdHeader: string | undefined, origin: string | undefined): Record<string, string> {
  const headers: Record<string, string> = {
    'x-request-id': requestIdHeader ?? randomUUID(),
    'access-control-allow-origin': origin ?? '*',
    'access-control-expose-headers': EXPOSED,
  }
  if (origin !== undefined) headers['vary'] = 'origin'
  return headers
}

/** `If-None-Match` names `etag` (a list of tags is allowed). */
export function matchesEtag(ifNoneMatch: string | undefined, etag: string): boolean {
  return ifNoneMatch !== undefined && ifNoneMatch.split(',').some((tag) => tag.trim() === etag)
}
