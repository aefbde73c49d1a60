/** The optional shared secret (SLUICE_SECRET), given as `?secret=` or `Authorization: Bearer`. */
import { createHash, timingSafeEqual } from 'node:crypto'

/** True when no secret is configured or the request gives it; compared in constant time. */
export function hasSecret(secret: string | undefined, querySecret: string | undefined, authorization: string | undefined): boolean {
  if (secret === undefined) return true
  const bearer = /^Bearer\s+(.+)$/i.exec(authorization ?? '')?.[1]
  const given = querySecret ?? bearer
  return given !== undefined && timingSafeEqual(digest(given), digest(secret))
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest()
}
