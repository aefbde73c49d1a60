/**
 * Admission control, as Electric's (`max_concurrent_requests`): two budgets of requests in
 * flight, one for requests that create a shape and one for requests to shapes that exist. A
 * new shape costs a snapshot; after a deploy every client asks for one at once, and those must
 * not crowd out the clients already following their shapes, nor the other way round. Past its
 * budget a request is refused at once with 503 and a jittered `retry-after`, before it costs
 * anything. Live requests are bounded by SLUICE_MAX_LIVE_CONNECTIONS instead (`live-slots.ts`):
 * they wait, they do not work.
 */
import { OverloadedError } from '../errors.js'

export const ADMISSION = {
  /** The request's shape does not exist yet: serving it takes a snapshot. */
  initial: 'initial',
  /** The request reads a shape that exists. */
  existing: 'existing',
} as const
export type AdmissionKind = (typeof ADMISSION)[keyof typeof ADMISSION]

const ENV: Record<AdmissionKind, string> = {
  [ADMISSION.initial]: 'SLUICE_MAX_CONCURRENT_REQUESTS_INITIAL',
  [ADMISSION.existing]: 'SLUICE_MAX_CONCURRENT_REQUESTS_EXISTING',
}

export class Admission {
  readonly #max: Record<AdmissionKind, number>
  readonly #inFlight: Record<AdmissionKind, number> = { initial: 0, existing: 0 }

  constructor(max: Readonly<Record<AdmissionKind, number>>) {
    this.#max = { ...max }
  }

  inFlight(kind: AdmissionKind): number {
    return this.#inFlight[kind]
  }

  /** Takes a place in `kind`'s budget; call the returned function exactly once when the request ends. */
  admit(kind: AdmissionKind): () => void {
    if (this.#inFlight[kind] >= this.#max[kind]) {
      throw new OverloadedError(`Too many concurrent requests for ${kind === ADMISSION.initial ? 'new' : 'existing'} shapes (${ENV[kind]}=${this.#max[kind]}); retry shortly.`)
    }
    this.#inFlight[kind]++
    let released = false
    return () => {
      if (released) return
      released = true
      this.#inFlight[kind]--
    }
  }
}
