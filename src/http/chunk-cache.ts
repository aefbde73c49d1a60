/**
 * Rendered bodies of complete chunks. A complete chunk's response never changes (PROTOCOL:
 * Caching), so the bytes are kept in a size-bounded LRU and served again without reading or
 * joining the log entries. Shape ids are never reused, so an entry can never be stale.
 */
import { LRUCache } from 'lru-cache'
import { formatOffset, type Offset } from '../protocol/offset.js'

const DEFAULT_MAX_BYTES = 64 * 1024 * 1024

export class ChunkCache {
  readonly #bodies: LRUCache<string, Buffer>

  constructor(maxBytes = DEFAULT_MAX_BYTES) {
    this.#bodies = new LRUCache<string, Buffer>({ maxSize: maxBytes, sizeCalculation: (body) => Math.max(1, body.length) })
  }

  get(shapeId: number, after: Offset, end: Offset): Buffer | undefined {
    return this.#bodies.get(key(shapeId, after, end))
  }

  set(shapeId: number, after: Offset, end: Offset, body: Buffer): void {
    this.#bodies.set(key(shapeId, after, end), body)
  }
}

function key(shapeId: number, after: Offset, end: Offset): string {
  return `${shapeId}/${formatOffset(after)}/${formatOffset(end)}`
}
