/**
 * How big a run is: the full soak (`npm run soak`, ten minutes by default) or the short one
 * CI runs. The followers: which kind of client follows which shape; the first is the probe
 * that recovery times are measured on (plain HTTP, all of `accounts`).
 */
import { FOLLOWER_KIND, type FollowerKind } from './followers.js'
import { SHAPES, type ShapeSpec } from './shapes.js'

export interface SoakScale {
  readonly followers: keyof typeof FOLLOWERS
  readonly smallWriters: number
  /** Rows of a large transaction. */
  readonly largeRows: number
  readonly rareEveryMs: number
  /** Pause between two faults, drawn from [min, max]. */
  readonly faultGapMs: readonly [number, number]
  /** Longest PostgreSQL outage, connection stall, or disk-full spell. */
  readonly maxOutageMs: number
  /** Longest stop of a pausing follower. */
  readonly maxPauseMs: number
  /** Size of Sluice's data disk. */
  readonly diskMb: number
}

const { electricLongPoll, electricSse, eventSource, http, httpPausing } = FOLLOWER_KIND

export const FOLLOWERS: Record<'full' | 'short', readonly (readonly [FollowerKind, ShapeSpec])[]> = {
  full: [
    [http, SHAPES.accounts],
    [http, SHAPES.accountsFull],
    [http, SHAPES.ledger],
    [http, SHAPES.scratch],
    [httpPausing, SHAPES.accounts],
    [httpPausing, SHAPES.accountsOwner],
    [electricLongPoll, SHAPES.accounts],
    [electricLongPoll, SHAPES.accountsOwner],
    [electricLongPoll, SHAPES.accountsColumns],
    [electricLongPoll, SHAPES.bulkSome],
    [electricSse, SHAPES.accountsFull],
    [electricSse, SHAPES.ledger],
    [electricSse, SHAPES.bulk],
    [electricSse, SHAPES.scratch],
    [eventSource, SHAPES.accounts],
    [eventSource, SHAPES.accountsColumns],
    [eventSource, SHAPES.ledger],
  ],
  short: [
    [http, SHAPES.accounts],
    [httpPausing, SHAPES.accountsOwner],
    [electricLongPoll, SHAPES.accountsColumns],
    [electricSse, SHAPES.bulk],
    [electricSse, SHAPES.ledger],
    [eventSource, SHAPES.accountsFull],
    [eventSource, SHAPES.scratch],
  ],
}

export const FULL: SoakScale = {
  followers: 'full',
  smallWriters: 3,
  largeRows: 100_000,
  rareEveryMs: 8_000,
  faultGapMs: [5_000, 20_000],
  maxOutageMs: 5_000,
  maxPauseMs: 120_000,
  diskMb: 1_024,
}

export const SHORT: SoakScale = {
  followers: 'short',
  smallWriters: 2,
  largeRows: 5_000,
  rareEveryMs: 2_000,
  faultGapMs: [300, 1_500],
  maxOutageMs: 1_500,
  maxPauseMs: 8_000,
  diskMb: 256,
}
