/**
 * One streaming replication connection on `pg` (docs/ARCHITECTURE.md: Replication seam). It runs
 * `START_REPLICATION … LOGICAL` with pgoutput's options and passes every CopyData frame on, read
 * by `copy-both-frames.ts`, in order; it writes standby status updates back. The copy-both
 * exchange goes through `pg-copy-streams`' `both` Duplex, which plugs into `pg` the documented way
 * (a Submittable query, as COPY and cursors do), so no private field of either library is used.
 * Backpressure is the Duplex's own: `pause()` stops reading frames, its buffer fills, it stops
 * reading the socket, and TCP tells PostgreSQL to wait.
 */
import type { Duplex } from 'node:stream'
import pg from 'pg'
import { both as copyBoth } from 'pg-copy-streams'
import { formatLsn, type Lsn } from '../pg/lsn.js'
import { outputSettingsOptions } from '../pg/output-settings.js'
import { quoteIdent } from '../pg/sql.js'
import { parseServerFrame, standbyStatusUpdate, type ServerFrame } from './copy-both-frames.js'

export interface StartReplication {
  readonly connectionString: string
  readonly slot: string
  readonly publication: string
  /** Stream transactions that commit after this LSN. */
  readonly startLsn: Lsn
  /** Durable so far; sent as the first status update (0: nothing yet, which PostgreSQL ignores). */
  readonly acknowledged: Lsn
}

export interface ReplicationConnectionEvents {
  /** PostgreSQL accepted START_REPLICATION: frames follow. */
  onStart(): void
  onFrame(frame: ServerFrame): void
  /** The connection is over (a failure, or the server ended the stream). Not called after `close()`. */
  onEnd(error: unknown): void
}

export interface ReplicationConnection {
  /** Tells PostgreSQL that everything before `durable` is safe: the slot may release it. */
  sendStatus(durable: Lsn): void
  pause(): void
  resume(): void
  close(): Promise<void>
}

export type OpenReplicationConnection = (start: StartReplication, events: ReplicationConnectionEvents) => ReplicationConnection

export const openReplicationConnection: OpenReplicationConnection = (start, events) => new CopyBothConnection(start, events)

/** Frames read ahead of the stream's queue before the socket is left unread. */
const READ_AHEAD_BYTES = 1 << 20

class CopyBothConnection implements ReplicationConnection {
  readonly #client: pg.Client
  readonly #events: ReplicationConnectionEvents
  #stream: Duplex | undefined
  /** Closed, or ended: no event is reported any more. */
  #over = false

  constructor(start: StartReplication, events: ReplicationConnectionEvents) {
    this.#events = events
    // `replication` is a startup parameter `pg` passes on, though its types leave it out.
    const config: pg.ClientConfig & { replication: 'database' } = { connectionString: start.connectionString, options: outputSettingsOptions(), replication: 'database' }
    this.#client = new pg.Client(config)
    this.#client.on('error', (error) => this.#end(error))
    this.#client.on('end', () => this.#end(new Error('replication connection closed')))
    void this.#run(start)
  }

  sendStatus(durable: Lsn): void {
    if (!this.#over && this.#stream?.writable) this.#stream.write(standbyStatusUpdate(durable, Date.now()))
  }

  pause(): void {
    this.#stream?.pause()
  }

  resume(): void {
    this.#stream?.resume()
  }

  async close(): Promise<void> {
    this.#over = true
    await this.#client.end().catch(() => undefined)
  }

  async #run(start: StartReplication): Promise<void> {
    try {
      await this.#client.connect()
    } catch (error) {
      this.#end(error)
      return
    }
    if (this.#over) return
    const stream = copyBoth(startReplication(start), { alignOnCopyDataFrame: true, readableHighWaterMark: READ_AHEAD_BYTES })
    this.#stream = stream
    stream.on('data', (frame: Buffer) => {
      if (!this.#over) this.#events.onFrame(parseServerFrame(frame))
    })
    stream.on('error', (error) => this.#end(error))
    stream.on('end', () => this.#end(new Error('replication stream ended')))
    this.#client.query(stream)
    // The Duplex holds writes until PostgreSQL answers START_REPLICATION with CopyBothResponse;
    // the first write's callback is how that answer shows.
    stream.write(standbyStatusUpdate(start.acknowledged, Date.now()), (error) => {
      if (!error && !this.#over) this.#events.onStart()
    })
  }

  #end(error: unknown): void {
    if (this.#over) return
    this.#over = true
    this.#events.onEnd(error)
  }
}

function startReplication({ slot, publication, startLsn }: StartReplication): string {
  const names = quoteIdent(publication).replaceAll("'", "''")
  return `START_REPLICATION SLOT ${quoteIdent(slot)} LOGICAL ${formatLsn(startLsn)} (proto_version '1', publication_names '${names}')`
}
