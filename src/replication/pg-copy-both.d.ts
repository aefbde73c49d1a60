/**
 * `pg-copy-streams` exports `both` (a copy-both Duplex for replication), which its published types
 * leave out. Only what `replication-connection.ts` uses is declared.
 */
import type { Submittable } from 'pg'
import type { Duplex, DuplexOptions } from 'node:stream'

declare module 'pg-copy-streams' {
  /** With `alignOnCopyDataFrame`, every chunk read is one CopyData payload. */
  export function both(text: string, options?: DuplexOptions & { alignOnCopyDataFrame?: boolean }): Duplex & Submittable
}
