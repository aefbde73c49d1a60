/**
 * What clients saw go wrong, by HTTP status (or `network` for a refused or cut connection),
 * counted by a `fetch` wrapper that every follower kind makes its requests through.
 */
export class ClientErrors {
  readonly byStatus = new Map<string, number>()
  requests = 0

  count(what: string): void {
    this.byStatus.set(what, (this.byStatus.get(what) ?? 0) + 1)
  }

  /** `fetch`, counting every response that is not a 200 or 304, and every failure. */
  readonly fetch = async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    this.requests++
    try {
      const response = await fetch(input, init)
      if (response.status !== 200 && response.status !== 304) this.count(String(response.status))
      return response
    } catch (error) {
      if (!init?.signal?.aborted) this.count('network')
      throw error
    }
  }
}
