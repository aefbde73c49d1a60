/**
 * Every kind of client at once, each reporting its rows to the checker at every up-to-date:
 * `@electric-sql/client` over long-poll and over SSE, a bare `EventSource` (the `eventsource`
 * package), and plain HTTP followers (test/support/follower.ts), one of which stops for a while
 * and resumes from its old offset. All of them go through the HTTP proxy, so cutting clients
 * mid-response is one call.
 */
import { ShapeStream, type Message, type Row as ElectricRow } from '@electric-sql/client'
import { Follower } from '../test/support/follower.js'
import { SseFollower } from '../test/support/sse-follower.js'
import type { Checker } from './checker.js'
import type { ClientErrors } from './client-errors.js'
import type { Random } from './random.js'
import type { ShapeSpec } from './shapes.js'
import { HttpTrace } from './http-trace.js'
import { rereadLog } from './log-reread.js'
import { Trace } from './trace.js'

export const FOLLOWER_KIND = {
  electricLongPoll: 'electric long-poll',
  electricSse: 'electric SSE',
  eventSource: 'EventSource',
  http: 'HTTP long-poll',
  httpPausing: 'HTTP, stops and resumes',
} as const
export type FollowerKind = (typeof FOLLOWER_KIND)[keyof typeof FOLLOWER_KIND]

export interface FollowerContext {
  /** `http://127.0.0.1:<port>` of the proxy in front of Sluice. */
  readonly baseUrl: string
  readonly checker: Checker
  readonly errors: ClientErrors
  readonly random: Random
  /** Longest stop of a pausing follower. */
  readonly maxPauseMs: number
}

export interface SoakFollower {
  readonly name: string
  readonly kind: FollowerKind
  readonly spec: ShapeSpec
  /** Rows now, for the final convergence check. */
  rows(): ReadonlyMap<string, Readonly<Record<string, unknown>>>
  /** Where the client stands, for a report of one that did not converge. */
  status(): string
  /** The handle and offset it would ask for next, when it has one. */
  position(): { handle: string; offset: string } | undefined
  /** Ends any pause early (the end of the run). */
  wake(): void
  stop(): void
}

export function startFollower(kind: FollowerKind, spec: ShapeSpec, index: number, context: FollowerContext): SoakFollower {
  const name = `${kind} #${index} (${spec.name})`
  switch (kind) {
    case FOLLOWER_KIND.electricLongPoll:
    case FOLLOWER_KIND.electricSse:
      return electricFollower(name, kind, spec, context)
    case FOLLOWER_KIND.eventSource:
      return eventSourceFollower(name, spec, context)
    case FOLLOWER_KIND.http:
    case FOLLOWER_KIND.httpPausing:
      return httpFollower(name, kind, spec, context)
  }
}

/** Reports what an SseFollower learnt since its last up-to-date: duplicates, gaps, then its rows. */
function reportSse(name: string, spec: ShapeSpec, state: SseFollower, context: FollowerContext, position: () => { handle: string | undefined; offset: string }, seen: { duplicates: number; errors: number }, trace: Trace): void {
  const { handle, offset } = position()
  const where = { follower: name, shape: spec.name, offset: `${handle ?? '?'} @ ${offset}`, clock: undefined }
  for (const duplicate of state.duplicates.slice(seen.duplicates)) context.checker.report({ ...where, kind: 'duplicate', detail: duplicate })
  for (const error of state.errors.slice(seen.errors)) context.checker.report({ ...where, kind: 'gap', detail: error })
  seen.duplicates = state.duplicates.length
  seen.errors = state.errors.length
  context.checker.observe({ follower: name, spec, handle, offset, rows: new Map(state.rows), snapshotEnd: state.snapshotEnd, lastXid: state.lastXid, at: Date.now(), trace: () => trace.toString() })
}

function electricFollower(name: string, kind: FollowerKind, spec: ShapeSpec, context: FollowerContext): SoakFollower {
  const controller = new AbortController()
  const state = new SseFollower()
  const seen = { duplicates: 0, errors: 0 }
  const { columns, ...params } = spec.params as Record<string, string>
  const stream = new ShapeStream<ElectricRow>({
    url: `${context.baseUrl}/v1/shape`,
    params: { table: spec.table, ...params, ...(columns ? { columns: columns.split(',') } : {}) },
    liveSse: kind === FOLLOWER_KIND.electricSse,
    signal: controller.signal,
    fetchClient: context.errors.fetch as typeof fetch,
    backoffOptions: { initialDelay: 100, maxDelay: 2_000, multiplier: 1.5 },
    // Keep syncing whatever happened: the checker judges the result.
    onError: (error) => {
      context.errors.count(`client error: ${error.constructor.name}`)
      return {}
    },
  } as ConstructorParameters<typeof ShapeStream<ElectricRow>>[0])
  const trace = new Trace()
  state.onUpToDate = () => reportSse(name, spec, state, context, () => ({ handle: stream.shapeHandle, offset: stream.lastOffset }), seen, trace)
  stream.subscribe((messages: Message<ElectricRow>[]) => {
    for (const message of messages) {
      trace.message(message as never, `${stream.shapeHandle} ${stream.lastOffset}`)
      state.apply(message as never)
    }
  })
  return {
    name,
    kind,
    spec,
    rows: () => state.rows,
    position: () => (stream.shapeHandle ? { handle: stream.shapeHandle, offset: stream.lastOffset } : undefined),
    status: () => `handle ${stream.shapeHandle}, offset ${stream.lastOffset}, up to date ${stream.isUpToDate}, ${state.upToDates} up-to-dates, ${state.mustRefetches} must-refetches; received: ${trace.toString()}`,
    wake: () => undefined,
    stop: () => controller.abort(),
  }
}

/**
 * A browser's `EventSource`: it reconnects by itself after a drop, but an error status closes
 * it for good, as browsers do; the page then opens a new one from scratch.
 */
function eventSourceFollower(name: string, spec: ShapeSpec, context: FollowerContext): SoakFollower {
  const url = new URL(`${context.baseUrl}/v1/shape`)
  for (const [k, v] of Object.entries({ table: spec.table, ...spec.params, offset: '-1', live: 'true', live_sse: 'true' })) url.searchParams.set(k, v)
  let stopped = false
  let state: SseFollower
  let retry: NodeJS.Timeout | undefined
  const trace = new Trace()
  const open = () => {
    const seen = { duplicates: 0, errors: 0 }
    trace.note('new EventSource')
    state = new SseFollower(url.toString(), { fetch: context.errors.fetch })
    const current = state
    current.onUpToDate = () => reportSse(name, spec, current, context, () => ({ handle: undefined, offset: current.lastEventId }), seen, trace)
    current.source!.addEventListener('message', (event) => trace.message(JSON.parse(event.data as string) as never, event.lastEventId))
    current.source!.onopen = () => {
      current.opens++
      trace.note('open')
    }
    current.source!.onerror = () => {
      trace.note(`error, readyState ${current.source!.readyState}`)
      if (current.source!.readyState !== current.source!.CLOSED || stopped) return
      context.errors.count('EventSource closed')
      retry = setTimeout(open, 1_000)
    }
  }
  open()
  return {
    name,
    kind: FOLLOWER_KIND.eventSource,
    spec,
    rows: () => state.rows,
    position: () => {
      const at = state.lastEventId.lastIndexOf(':')
      return at > 0 ? { handle: state.lastEventId.slice(0, at), offset: state.lastEventId.slice(at + 1) } : undefined
    },
    status: () => `readyState ${state.source!.readyState}, last event id ${state.lastEventId}, ${state.opens} opens, ${state.upToDates} up-to-dates, ${state.mustRefetches} must-refetches; received: ${trace.toString()}`,
    wake: () => undefined,
    stop: () => {
      stopped = true
      clearTimeout(retry)
      state.close()
    },
  }
}

function httpFollower(name: string, kind: FollowerKind, spec: ShapeSpec, context: FollowerContext): SoakFollower {
  const follower = new Follower(() => `${context.baseUrl}/v1/shape`, { table: spec.table, ...spec.params })
  follower.fetchWith = (input, init) => context.errors.fetch(input, init)
  const trace = new HttpTrace(context.checker.startedAt)
  follower.onResponse = (request, response, messages) => trace.response(request, response, messages)
  const controller = new AbortController()
  let wake: (() => void) | undefined
  let checkedChanges = 0
  const random = context.random
  const rest = (ms: number) =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(() => resolve(), ms)
      wake = () => {
        clearTimeout(timer)
        resolve()
      }
    })
  const where = () => ({ follower: name, shape: spec.name, offset: `${follower.handle ?? '?'} @ ${follower.offset}`, clock: undefined })
  void (async () => {
    let nextPause = Date.now() + random.int(2_000, 20_000)
    while (!controller.signal.aborted) {
      if (kind === FOLLOWER_KIND.httpPausing && Date.now() > nextPause) {
        await rest(random.int(context.maxPauseMs / 4, context.maxPauseMs))
        nextPause = Date.now() + random.int(2_000, 20_000)
      }
      try {
        const refetches = follower.refetches
        const status = await follower.step({ live: true, signal: controller.signal })
        if (follower.refetches !== refetches) checkedChanges = 0
        if (status === 200 && follower.upToDate) {
          checkDuplicates(follower, checkedChanges, (detail) => context.checker.report({ ...where(), kind: 'duplicate', detail: `${detail}; received: ${trace.toString()}` }))
          checkedChanges = follower.changeIds.length
          const { handle, offset } = follower
          context.checker.observe({
            follower: name,
            spec,
            handle,
            offset,
            rows: new Map(follower.rows),
            snapshotEnd: follower.snapshotEnd,
            lastXid: follower.xids.at(-1),
            at: Date.now(),
            trace: () => trace.toString(),
            row: (id) => trace.row(id),
            ...(handle ? { reread: (ids: readonly string[]) => rereadLog(`${context.baseUrl}/v1/shape`, { table: spec.table, ...spec.params }, handle, offset, ids) } : {}),
          })
        } else if (status !== 200 && status !== 409) await rest(250)
      } catch (error) {
        if (controller.signal.aborted) break
        const message = (error as Error).message
        trace.note(`request failed: ${message}`)
        if (/of a row the client does not have/.test(message)) {
          context.checker.report({ ...where(), kind: 'gap', detail: `${message}; received: ${trace.toString()}` })
          trace.note('gap: refetching')
          follower.reset(undefined)
          checkedChanges = 0
        }
        await rest(250)
      }
    }
  })()
  return {
    name,
    kind,
    spec,
    rows: () => follower.rows,
    position: () => (follower.handle ? { handle: follower.handle, offset: follower.offset } : undefined),
    status: () => `handle ${follower.handle}, offset ${follower.offset}, up to date ${follower.upToDate}, ${follower.refetches} refetches; received: ${trace.toString()}`,
    wake: () => wake?.(),
    stop: () => {
      controller.abort()
      wake?.()
    },
  }
}

/** Within a handle, offsets only grow: a change at or before an earlier one was delivered twice. */
function checkDuplicates(follower: Follower, from: number, report: (detail: string) => void): void {
  const ids = follower.changeIds
  for (let i = Math.max(1, from); i < ids.length; i++) {
    const [lsn, op] = ids[i]!.split('/')
    const [previousLsn, previousOp] = ids[i - 1]!.split('/')
    const order = BigInt(lsn!) - BigInt(previousLsn!) || BigInt(Number(op) - Number(previousOp))
    if (order <= 0n) report(`${ids[i]} after ${ids[i - 1]}`)
  }
}
