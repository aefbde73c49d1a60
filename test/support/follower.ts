/**
 * A plain HTTP client of the shape log that keeps everything it saw, so tests can check the
 * log itself: the materialized rows, the snapshot's visibility, and every change's identity.
 */
export interface WireMessage {
  key?: string
  value?: Record<string, string | null>
  old_value?: Record<string, string | null>
  headers: Record<string, unknown>
}

export class Follower {
  handle: string | undefined
  offset = '-1'
  cursor: string | undefined
  upToDate = false
  readonly rows = new Map<string, Record<string, string | null>>()
  /** `lsn/op_position/operation/key` of every replicated change applied since the last reset. */
  readonly changeIds: string[] = []
  /** xid of every replicated change applied since the last reset. */
  readonly xids: number[] = []
  snapshotEnd: { xmin: string; xmax: string; xip_list: string[] } | undefined
  refetches = 0
  /** How requests are made; a test may add headers. */
  fetchWith: (input: URL, init: RequestInit) => Promise<Response> = (input, init) => fetch(input, init)
  readonly offsetsSeen = new Set<string>()
  /** Sees each response with its messages (none unless 200) before they apply: the soak traces them. */
  onResponse: ((request: URL, response: Response, messages: readonly WireMessage[]) => void) | undefined

  constructor(
    readonly baseUrl: () => string,
    readonly params: Record<string, string>,
    /** A `log=changes_only` client may get updates and deletes of rows it never saw. */
    readonly options: { readonly partial?: boolean } = {},
  ) {}

  /** One request; `live` only once up to date. Returns the HTTP status. */
  async step(options: { live?: boolean; signal?: AbortSignal } = {}): Promise<number> {
    const url = new URL(this.baseUrl())
    for (const [k, v] of Object.entries(this.params)) url.searchParams.set(k, v)
    url.searchParams.set('offset', this.offset)
    if (this.handle) url.searchParams.set('handle', this.handle)
    const live = options.live === true && this.upToDate
    if (live) {
      url.searchParams.set('live', 'true')
      if (this.cursor) url.searchParams.set('cursor', this.cursor)
    }
    // The request gets a signal of its own that follows the caller's: fetch keeps a listener on the
    // signal it is given until the request is garbage collected, so one signal given to every
    // request of a long test gathered thousands (MaxListenersExceededWarning). AbortSignal.any adds
    // no listener to the signals it follows.
    const signal = options.signal && AbortSignal.any([options.signal])
    return this.#answer(url, await this.fetchWith(url, signal ? { signal } : {}))
  }

  async #answer(request: URL, response: Response): Promise<number> {
    if (response.status === 409) {
      await response.text()
      this.onResponse?.(request, response, [])
      this.reset(response.headers.get('electric-handle') ?? undefined)
      return 409
    }
    if (response.status !== 200) {
      await response.text()
      this.onResponse?.(request, response, [])
      return response.status
    }
    const messages = (await response.json()) as WireMessage[]
    this.onResponse?.(request, response, messages)
    this.handle = response.headers.get('electric-handle') ?? undefined
    const nextOffset = response.headers.get('electric-offset')!
    this.cursor = response.headers.get('electric-cursor') ?? this.cursor
    this.upToDate = false
    for (const message of messages) this.apply(message)
    if (nextOffset !== this.offset) this.offsetsSeen.add(nextOffset)
    this.offset = nextOffset
    return 200
  }

  /** Follows until up to date (non-live requests only). */
  async catchUp(maxSteps = 10_000): Promise<void> {
    for (let i = 0; i < maxSteps; i++) {
      const status = await this.step()
      if (status !== 200 && status !== 409) throw new Error(`unexpected status ${status}`)
      if (status === 200 && this.upToDate) return
    }
    throw new Error('did not catch up')
  }

  reset(handle: string | undefined): void {
    this.refetches++
    this.handle = handle
    this.offset = '-1'
    this.upToDate = false
    this.rows.clear()
    this.changeIds.length = 0
    this.xids.length = 0
    this.snapshotEnd = undefined
    this.offsetsSeen.clear()
  }

  apply(message: WireMessage): void {
    const control = message.headers['control']
    if (control === 'up-to-date') {
      this.upToDate = true
      return
    }
    if (control === 'snapshot-end') {
      this.snapshotEnd = message.headers as never
      return
    }
    if (control !== undefined) throw new Error(`unexpected control ${String(control)}`)
    const key = message.key!
    const operation = message.headers['operation']
    if (message.headers['lsn'] !== undefined) {
      this.xids.push((message.headers['txids'] as number[])[0]!)
      this.changeIds.push(`${String(message.headers['lsn'])}/${String(message.headers['op_position'])}/${String(operation)}/${key}`)
    }
    if (operation === 'insert') this.rows.set(key, { ...message.value })
    else if (operation === 'update') {
      const existing = this.rows.get(key)
      if (!existing && !this.options.partial) throw new Error(`update of a row the client does not have: ${key} (${this.#where(message)})`)
      this.rows.set(key, { ...existing, ...message.value })
    } else if (operation === 'delete') {
      if (!this.rows.delete(key) && !this.options.partial) throw new Error(`delete of a row the client does not have: ${key} (${this.#where(message)})`)
    }
  }

  /** Where a change that cannot apply stands, for the failure message. */
  #where(message: WireMessage): string {
    const { lsn, txids } = message.headers
    return `lsn ${String(lsn)}, txid ${JSON.stringify(txids)}, handle ${this.handle}, offset ${this.offset}, snapshot ${JSON.stringify(this.snapshotEnd)}, ${this.changeIds.length} changes applied`
  }

  /** Rows sorted by key, for comparison with a query result. */
  sortedRows(): Record<string, string | null>[] {
    return [...this.rows.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, row]) => row)
  }
}
