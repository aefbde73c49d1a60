/**
 * Shape handles: `<definition hash>-<issue clock>`. The clock is strictly increasing and
 * persisted, so a handle is never issued twice, not even after a restart or a deleted shape.
 */
import { createHash } from 'node:crypto'

export type ShapeHandle = string & { readonly __brand: 'ShapeHandle' }

/**
 * A `handle` this server cannot have issued (malformed). Electric takes any text as a handle and
 * answers one it does not know with 409 must-refetch and the current handle; so does Sluice.
 */
export const FOREIGN_HANDLE = Symbol('foreign handle')

const HANDLE_TEXT = /^[0-9a-f]{8}-[0-9]{1,20}$/

export function makeShapeHandle(definitionKey: string, clock: bigint): ShapeHandle {
  const hash = createHash('sha256').update(definitionKey).digest('hex').slice(0, 8)
  return `${hash}-${clock}` as ShapeHandle
}

export function parseShapeHandle(text: string): ShapeHandle | undefined {
  return HANDLE_TEXT.test(text) ? (text as ShapeHandle) : undefined
}
