/**
 * The Hono app over in-memory parts, for HTTP tests through `app.request()` with no database
 * and no socket: the shape logs (`MemoryShapeLog`), a registry that hands out shapes whose
 * snapshots the test writes itself, and a catalog of one table.
 */
import pg from 'pg'
import { pino } from 'pino'
import { ERROR_CODES, MustRefetchError, TableError } from '../../src/errors.js'
import { Admission } from '../../src/http/admission.js'
import { createApp, HEALTH } from '../../src/http/app.js'
import { LiveSlots } from '../../src/http/live-slots.js'
import type { ShapeRegistry, TableLookup } from '../../src/http/shape-route.js'
import { Metrics } from '../../src/metrics.js'
import type { TableInfo } from '../../src/pg/introspect.js'
import { qualifiedName } from '../../src/pg/sql.js'
import type { TableName } from '../../src/pg/table-name.js'
import { ActiveShape } from '../../src/shapes/active-shape.js'
import { definitionKey, type ShapeDefinition } from '../../src/shapes/shape-definition.js'
import { bindShape } from '../../src/shapes/shape-filter.js'
import { makeShapeHandle } from '../../src/shapes/shape-handle.js'
import { Semaphore } from '../../src/shapes/semaphore.js'
import { visibilityOf } from '../../src/shapes/xid-visibility.js'
import { SHAPE_STATUS } from '../../src/storage/shape-log-store.js'
import { MemoryShapeLog } from './memory-shape-log.js'
import { tableInfo } from './table-info.js'

/** `public.items (id int4 PRIMARY KEY, title text)`, as the catalog would describe it. */
export const ITEMS: TableInfo = tableInfo('items', [
  { name: 'id', typeOid: 23, typeName: 'int4', dims: 0, notNull: true, pkIndex: 0 },
  { name: 'title', typeOid: 25, typeName: 'text', dims: 0, notNull: false, pkIndex: undefined },
], { oid: 16_384 })

export class MemoryTables implements TableLookup {
  readonly #tables = new Map([[qualifiedName(ITEMS.table), ITEMS]])

  async get(table: TableName): Promise<TableInfo> {
    const info = await this.find(table)
    if (!info) throw new TableError(ERROR_CODES.tableNotFound, `table ${qualifiedName(table)} does not exist (or is not visible to Sluice's role)`)
    return info
  }

  async find(table: TableName): Promise<TableInfo | undefined> {
    return this.#tables.get(qualifiedName(table))
  }

  forget(): void {}
}

/** A snapshot's visibility when no transaction is ever routed. */
const NO_TRANSACTIONS = visibilityOf({ xmin: '1', xmax: '1', xip: [] })

/** Shapes made on request, with an empty log and their snapshot still running until the test says. */
export class MemoryShapes implements ShapeRegistry {
  readonly #byHandle = new Map<string, ActiveShape>()
  readonly #byKey = new Map<string, ActiveShape>()
  readonly #log: MemoryShapeLog
  #clock = 1_700_000_000_000n

  constructor(log: MemoryShapeLog) {
    this.#log = log
  }

  byHandle(handle: string): ActiveShape | undefined {
    return this.#byHandle.get(handle)
  }

  byDefinition(definition: ShapeDefinition): ActiveShape | undefined {
    return this.#byKey.get(definitionKey(definition))
  }

  async getOrCreate(definition: ShapeDefinition, table: TableInfo): Promise<ActiveShape> {
    const key = definitionKey(definition)
    const existing = this.#byKey.get(key)
    if (existing) return existing
    const id = this.#byHandle.size + 1
    const stored = { id, handle: makeShapeHandle(key, this.#clock++), definition, definitionKey: key, status: SHAPE_STATUS.snapshotting, createdAtMs: 0 }
    const shape = ActiveShape.waiting(stored, bindShape(definition, table))
    this.#byHandle.set(shape.stored.handle, shape)
    this.#byKey.set(key, shape)
    return shape
  }

  async mustRefetch(definition: ShapeDefinition, table: TableInfo, why: string): Promise<never> {
    throw new MustRefetchError((await this.getOrCreate(definition, table)).stored.handle, why)
  }

  async drop(shape: ActiveShape): Promise<void> {
    shape.drop()
    this.#byHandle.delete(shape.stored.handle)
    if (this.#byKey.get(shape.stored.definitionKey) === shape) this.#byKey.delete(shape.stored.definitionKey)
    this.#log.notify(shape.stored.id)
  }

  /** Writes a one-chunk snapshot of `rows` and marks it complete, as the snapshot would. */
  completeSnapshot(shape: ActiveShape, rows: readonly unknown[]): void {
    this.#log.append(shape.stored.id, '0_0', ...rows)
    this.#log.closeChunk(shape.stored.id, '0_0')
    shape.startSnapshot(NO_TRANSACTIONS)
    shape.completeSnapshot()
    this.#log.notify(shape.stored.id)
  }
}

export interface MemoryAppOptions {
  readonly longPollMs?: number
  readonly maxLiveConnections?: number
  readonly now?: () => number
}

export function memoryApp(options: MemoryAppOptions = {}) {
  const log = new MemoryShapeLog()
  const shapes = new MemoryShapes(log)
  const shutdown = new AbortController()
  const metrics = new Metrics()
  const app = createApp({
    store: log,
    notifier: log,
    manager: shapes,
    tables: new MemoryTables(),
    longPollMs: options.longPollMs ?? 20_000,
    cache: { maxAgeSeconds: 60, staleAgeSeconds: 300 },
    canCreateShapes: () => true,
    // Never connected: a route that reached for PostgreSQL would fail the test.
    pool: new pg.Pool({ host: '/nonexistent', max: 1 }),
    subsetSlots: new Semaphore(1),
    subsetQueueLength: 10,
    admission: new Admission({ initial: 100, existing: 100 }),
    liveSlots: new LiveSlots(options.maxLiveConnections ?? 100, metrics),
    secret: undefined,
    allowShapeDeletion: true,
    allowedTables: undefined,
    metrics,
    openapi: '',
    shutdown: shutdown.signal,
    health: () => HEALTH.active,
    log: pino({ level: 'silent' }),
    ...(options.now ? { now: options.now } : {}),
  })
  return { app, log, shapes, shutdown }
}
