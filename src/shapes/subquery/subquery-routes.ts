/**
 * Finds the shapes a change to a table read by subqueries concerns, by the subquery's own
 * equality index (`user_id = $1` in the usual per-user shape): a membership change reaches its
 * user's shapes by one hash lookup, not by a scan over every shape with a subquery.
 */
import type { Tuple } from '../../replication/pgoutput-messages.js'
import type { Relation } from '../../replication/transaction.js'
import { RoutingIndex } from '../routing-index.js'
import type { ShapeSubqueries } from './shape-subqueries.js'

interface Route<S> {
  readonly shape: S
}

export class SubqueryRoutes<S extends { readonly subqueries?: ShapeSubqueries | undefined }> {
  readonly #index = new RoutingIndex<Route<S>>()
  readonly #routes = new Map<S, Route<S>[]>()

  get size(): number {
    return this.#routes.size
  }

  add(shape: S): void {
    if (!shape.subqueries) return
    const routes = shape.subqueries.dependencies.map((dependency) => {
      const route = { shape }
      this.#index.add(route, dependency.table.schema, dependency.table.name, dependency.equalityIndex)
      return route
    })
    this.#routes.set(shape, routes)
  }

  remove(shape: S): void {
    for (const route of this.#routes.get(shape) ?? []) this.#index.remove(route)
    this.#routes.delete(shape)
  }

  /** Shapes with a subquery over the table (a TRUNCATE of it ends them). */
  *shapesOf(schema: string, name: string): Iterable<S> {
    for (const route of this.#index.shapesOf(schema, name)) yield route.shape
  }

  *candidates(relation: Relation, record: Tuple | undefined, old: Tuple | undefined): Iterable<S> {
    for (const route of this.#index.candidates(relation, record, old)) yield route.shape
  }
}
