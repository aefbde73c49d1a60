/**
 * A subset snapshot (`subset__*` on GET, or POST): the shape's rows that also match the
 * subset, read at one database snapshot and streamed as `{"metadata":{…},"data":[…]}` with
 * the headers Electric sends for it. The rows flow from PostgreSQL to the socket as the
 * socket takes them; nothing holds the whole answer.
 *
 * `electric-offset` is where the client's stream goes on from after injecting the rows. For a
 * request that names its position (`handle` + `offset`) it is that position: the stream then
 * misses nothing, and the client drops the changes the snapshot already holds (by xid and
 * `database_lsn`). For `-1`/`now` it is the shape's head read before the query, so every
 * change past it commits after the rows were read or is one the snapshot holds.
 */
import type pg from 'pg'
import { InvalidRequestError, MustRefetchError, OverloadedError, RequestAbortedError } from '../errors.js'
import { HEADERS, OFFSET_NOW, PARAMS } from '../protocol/constants.js'
import { BEFORE_ALL, compareOffsets, formatOffset } from '../protocol/offset.js'
import type { ActiveShape } from '../shapes/active-shape.js'
import type { Semaphore } from '../shapes/semaphore.js'
import { LOG_MODES } from '../shapes/shape-definition.js'
import { compileSubset, type SubsetParams } from '../shapes/subset/compile-subset.js'
import { TableChangedError } from '../shapes/snapshot.js'
import { takeSubset, type SubsetMetadata, type SubsetRows } from '../shapes/subset/take-subset.js'
import { waitForSnapshot } from '../shapes/shape-lifecycle.js'
import { isDataException } from '../pg/permanent-errors.js'
import { electricSchema } from '../protocol/electric-schema.js'
import { CACHE_CONTROL } from './cache-headers.js'
import { headOf } from './log-reader.js'
import { resolveShape, type ShapeRouteDeps } from './shape-route.js'
import type { ShapeRequest } from './shape-request.js'

export interface SubsetRouteDeps extends ShapeRouteDeps {
  readonly pool: pg.Pool
  /** Subset queries running at once, each on its own connection. */
  readonly subsetSlots: Semaphore
  /** Subsets allowed to wait for a slot (SLUICE_SNAPSHOT_QUEUE); past that, 503. Each holds its parameters meanwhile. */
  readonly subsetQueueLength: number
}

export async function serveSubset(
  deps: SubsetRouteDeps,
  request: ShapeRequest,
  subset: SubsetParams,
  queryable: ReadonlySet<string> | undefined,
  signal: AbortSignal,
): Promise<Response> {
  if (request.liveSse) throw InvalidRequestError.of(PARAMS.liveSse, 'subset snapshots are a stable view of the data: SSE does not apply to them')
  const shape = await resolveShape(deps, request)
  const compiled = compileSubset(subset, await deps.tables.get(request.definition.table), queryable)
  const offset = await resumeOffset(deps, request, shape, signal)

  if (deps.subsetSlots.free === 0 && deps.subsetSlots.waiting >= deps.subsetQueueLength) {
    throw new OverloadedError(`Too many subset snapshots are waiting for a connection (${deps.subsetSlots.waiting}); retry shortly.`)
  }
  const release = await deps.subsetSlots.acquire(signal)
  if (!release) throw new RequestAbortedError()
  let rows: SubsetRows
  let first: IteratorResult<readonly Buffer[], void>
  try {
    rows = await takeSubset(deps.pool, shape.table, shape.where?.sql, compiled, shape.subqueries?.rowHeadersSql)
    first = await rows.batches.next()
  } catch (error) {
    release()
    // The table changed under the shape: its clients must start again, as a shape snapshot's would.
    if (error instanceof TableChangedError) throw new MustRefetchError(undefined, error.message, { cause: error })
    // A value the client's clause cannot handle is the client's to fix.
    if (isDataException(error)) {
      throw new InvalidRequestError({ [PARAMS.subsetWhere]: [`PostgreSQL could not evaluate the subset: ${(error as Error).message}`] }, { cause: error })
    }
    throw error
  }
  const headers = {
    [HEADERS.handle]: shape.stored.handle,
    [HEADERS.offset]: offset,
    [HEADERS.schema]: JSON.stringify(electricSchema(shape.table)),
    [HEADERS.snapshot]: 'true',
    [HEADERS.cacheControl]: CACHE_CONTROL.subset,
    'content-type': 'application/json',
  }
  return new Response(bodyStream(rows.metadata, first, rows.batches, release), { status: 200, headers })
}

async function resumeOffset(deps: ShapeRouteDeps, request: ShapeRequest, shape: ActiveShape, signal: AbortSignal): Promise<string> {
  if (request.offset !== OFFSET_NOW && compareOffsets(request.offset, BEFORE_ALL) !== 0) return formatOffset(request.offset)
  // A full log's snapshot can take long; the client only follows this offset on changes_only shapes.
  if (shape.stored.definition.log === LOG_MODES.full && !shape.snapshotComplete) return formatOffset(BEFORE_ALL)
  await waitForSnapshot(deps.notifier, shape, signal)
  return formatOffset(headOf(deps.store, shape))
}

const OPEN_DATA = Buffer.from(',"data":[')
const COMMA = Buffer.from(',')
const CLOSE = Buffer.from(']}')

function metadataJson(metadata: SubsetMetadata): Buffer {
  return Buffer.from(
    `{"metadata":${JSON.stringify({
      xmin: metadata.xmin,
      xmax: metadata.xmax,
      xip_list: metadata.xip,
      database_lsn: String(metadata.databaseLsn),
      snapshot_mark: metadata.snapshotMark,
    })}`,
  )
}

/** Pulls one COPY batch per read, so the socket's pace sets PostgreSQL's. */
function bodyStream(
  metadata: SubsetMetadata,
  first: IteratorResult<readonly Buffer[], void>,
  batches: AsyncGenerator<readonly Buffer[], void, undefined>,
  release: () => void,
): ReadableStream<Uint8Array> {
  let pending: IteratorResult<readonly Buffer[], void> | undefined = first
  let rowsSent = 0
  const finish = () => {
    release()
    void batches.return()
  }
  return new ReadableStream<Uint8Array>(
    {
      start(controller) {
        controller.enqueue(Buffer.concat([metadataJson(metadata), OPEN_DATA]))
      },
      async pull(controller) {
        try {
          const result = pending ?? (await batches.next())
          pending = undefined
          if (result.done) {
            controller.enqueue(CLOSE)
            controller.close()
            release()
            return
          }
          const pieces: Buffer[] = []
          for (const row of result.value) {
            if (rowsSent++ > 0) pieces.push(COMMA)
            pieces.push(row)
          }
          controller.enqueue(Buffer.concat(pieces))
        } catch (error) {
          finish()
          controller.error(error)
        }
      },
      cancel() {
        finish()
      },
    },
    { highWaterMark: 1 },
  )
}
