/** Cache-Control values of docs/PROTOCOL.md's caching table, as pure functions. */
import { HEADERS } from '../protocol/constants.js'

export interface CachePolicy {
  readonly maxAgeSeconds: number
  readonly staleAgeSeconds: number
}

export const CACHE_CONTROL = {
  initial: 'public, max-age=604800, s-maxage=3600, stale-while-revalidate=2629746',
  live: 'public, max-age=5, stale-while-revalidate=5',
  mustRefetch: 'public, max-age=60, must-revalidate',
  noStore: 'no-store',
  /** A subset snapshot is read at the moment it is asked for: never reuse one. */
  subset: 'no-cache',
} as const

export function nonLiveCacheControl(policy: CachePolicy): string {
  return `public, max-age=${policy.maxAgeSeconds}, stale-while-revalidate=${policy.staleAgeSeconds}`
}

/** Errors, overload and other answers no cache may keep: neither browsers nor CDNs (as Electric). */
export const UNCACHEABLE: Readonly<Record<string, string>> = {
  [HEADERS.cacheControl]: CACHE_CONTROL.noStore,
  [HEADERS.surrogateControl]: CACHE_CONTROL.noStore,
}
