/**
 * Glue for `@electric-sql/client` in tests. Its typings do not allow
 * `exactOptionalPropertyTypes`, which this project enables, so the stream is passed to
 * `Shape` through this one cast.
 */
import { Shape, type Row, type ShapeStream } from '@electric-sql/client'

export function shapeOf<T extends Row<unknown> = Row>(stream: ShapeStream<T>): Shape<T> {
  return new Shape(stream as unknown as ConstructorParameters<typeof Shape<T>>[0])
}
