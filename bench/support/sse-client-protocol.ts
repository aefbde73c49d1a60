/**
 * What the latency bench (`bench/sse-latency.ts`) and its client processes
 * (`sse-clients.ts`) say to each other over IPC, and the clock and histogram both sides use.
 */

/** Histogram buckets of 10 µs up to 2 s; slower arrivals are kept exactly. */
export const BUCKET_MS = 0.01
export const BUCKETS = 200_000

export const clock = (): number => performance.timeOrigin + performance.now()

/**
 * Streams that each follow one row: stream `i` asks for the shape `id = first + i` and expects
 * the transactions `n` whose row is `(n % count) + 1`, as the writer picks it.
 */
export interface RowShapes {
  readonly first: number
  readonly count: number
}

/** The row transaction `n` updates, when the writer spreads its updates over `count` rows. */
export const rowOfTransaction = (n: number, count: number): number => (n % count) + 1

export type ToClients =
  | { readonly type: 'open'; readonly url: string; readonly clients: number; readonly capacity: number; readonly rows: RowShapes | undefined }
  | { readonly type: 'ping'; readonly sent: number }
  | { readonly type: 'cpu' }
  | { readonly type: 'collect'; readonly commits: Float64Array; readonly committed: number; readonly offsetMs: number; readonly waitMs: number }

export type FromClients =
  | { readonly type: 'opened'; readonly live: number; readonly failed: number; readonly firstError: string | undefined }
  | { readonly type: 'pong'; readonly sent: number; readonly now: number }
  | { readonly type: 'cpu'; readonly userMs: number; readonly systemMs: number }
  | { readonly type: 'result'; readonly result: ClientResult }

export interface ClientResult {
  readonly histogram: Uint32Array
  /** Latencies past the histogram, exactly. */
  readonly overflow: number[]
  readonly samples: number
  readonly max: number
  readonly negatives: number
  /** Clients that received every committed transaction meant for them. */
  readonly complete: number
  readonly clients: number
  /** Streams that ended during the run. */
  readonly ended: number
  readonly missing: number
}
