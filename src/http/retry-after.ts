/**
 * Every `retry-after` Sluice sends, in one place (docs/PROTOCOL.md: Status codes). A 503 says
 * "this can pass" (docs/ARCHITECTURE.md I15) and always carries one of these.
 */
import { randomInt } from 'node:crypto'

/** A 503 that passes by itself: the database back, replication connected, a client that waited. */
export const RETRY_AFTER_SECONDS = 5

/** `/v1/health` while replication reconnects: a probe, cheap to repeat, so sooner. */
export const HEALTH_RETRY_AFTER_SECONDS = 2

/** Electric's overload answer: 5 s plus 1–5 s of jitter, so refused clients do not return together. */
export function overloadRetryAfterSeconds(): number {
  return RETRY_AFTER_SECONDS + randomInt(1, 6)
}
