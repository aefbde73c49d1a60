/**
 * `electric-cursor`: the number of the current 20 s interval since a fixed epoch, always above
 * the cursor the client sent. Clients long-polling in one interval share one URL (a CDN
 * collapses them); consecutive polls of one client never reuse a URL.
 */
import { CURSOR_EPOCH_MS, CURSOR_INTERVAL_MS } from '../protocol/constants.js'

export function nextCursor(nowMs: number, clientCursor: string | undefined): string {
  const interval = BigInt(Math.floor((nowMs - CURSOR_EPOCH_MS) / CURSOR_INTERVAL_MS))
  const previous = clientCursor !== undefined && /^[0-9]{1,20}$/.test(clientCursor) ? BigInt(clientCursor) : -1n
  return String(interval > previous ? interval : previous + 1n)
}
