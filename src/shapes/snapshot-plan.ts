/**
 * What a shared snapshot's queries are (docs/ARCHITECTURE.md I21, I30).
 *
 * Shapes whose `where` is nothing but `col = c` or `col IN (…)` on an integer, text or uuid
 * column, and that select the same columns, share one branch: `col = ANY(ARRAY[…])` over every
 * value they ask for, each row carrying the column's text, by which it goes to the shapes that
 * asked for that value. PostgreSQL then plans and runs one index scan for a few hundred shapes,
 * where a `UNION ALL` branch per shape cost a plan and a scan each. Any other shape keeps a
 * branch of its own. Every row is (branch number, the key column's text or '', the row's JSON).
 *
 * Fairness: each shape's rows are counted first, no further than a pack (in the snapshot's first
 * round trip, so the count costs no wait of its own), and shapes are read in packs of at most
 * PACK_ROWS rows, smallest first. A shape is complete once its pack is read, so a large shape among small ones
 * is read last, alone, and holds them no longer than their own packs take.
 */
import { IDENTITY_SOURCES, type TableInfo } from '../pg/introspect.js'
import { qualifiedName, quoteIdent, sqlLiteral } from '../pg/sql.js'
import { distinctSql, rowJsonSql } from './snapshot-query.js'
import type { CompiledWhere } from './where/compile-where.js'
import type { Typed } from './where/typed-ast.js'

/** Rows a pack reads at most, unless one shape alone has more. */
export const PACK_ROWS = 10_000

/** A shape read through `col = ANY(…)`: the column, the array type its values compare in, its distinct values as text. */
export interface EqualityRows {
  readonly column: string
  readonly arrayType: ArrayType
  readonly values: readonly string[]
}

type ArrayType = 'int8' | 'text' | 'uuid'

/** Column types whose text output is the key the equality index compares (`where/equality-index.ts`). */
const ARRAY_TYPES: Readonly<Record<string, ArrayType>> = { int2: 'int8', int4: 'int8', int8: 'int8', text: 'text', uuid: 'uuid' }
const INT8_MIN = -(2n ** 63n)
const INT8_MAX = 2n ** 63n - 1n

/** A shape as a snapshot's queries see it. */
export interface PlannedShape {
  /** The shape's table, narrowed to its selected columns. */
  readonly table: TableInfo
  readonly whereSql: string | undefined
  readonly headersSql?: Readonly<Record<string, string>>
  /** Set when the shape may be read through a shared `col = ANY(…)` branch. */
  readonly equality?: EqualityRows
}

/**
 * How a shape with this `where` may be read through `col = ANY(…)`, or undefined. Only a
 * clause that is its equality index, on a column whose text is its key: the rows PostgreSQL
 * returns for the values are then exactly the clause's rows, and each row's text names them.
 */
export function equalityRowsOf(where: Pick<CompiledWhere, 'equalityIndex' | 'subqueries' | 'typed'> | undefined, table: TableInfo): EqualityRows | undefined {
  const index = where?.equalityIndex
  if (!where || !index || where.subqueries.length > 0 || table.identity.source === IDENTITY_SOURCES.allColumns) return undefined
  const typed = where.typed
  const column =
    typed.kind === 'compare' && typed.op === '=' ? (columnOf(typed.left) ?? columnOf(typed.right)) : typed.kind === 'in' && !typed.negated ? columnOf(typed.arg) : undefined
  if (!column || column.name !== index.column || column.type.array) return undefined
  const arrayType = ARRAY_TYPES[column.type.scalar]
  if (!arrayType) return undefined
  // An integer column never equals a fraction or a number past int8 (`user_id = 1.5` holds for no row).
  const values = arrayType === 'int8' ? index.values.filter(isInt8) : index.values
  return { column: column.name, arrayType, values: [...new Set(values)] }
}

function columnOf(node: Typed): Extract<Typed, { kind: 'column' }> | undefined {
  const inner = node.kind === 'convert' ? node.arg : node
  return inner.kind === 'column' ? inner : undefined
}

function isInt8(text: string): boolean {
  if (!/^-?[0-9]+$/.test(text)) return false
  const value = BigInt(text)
  return value >= INT8_MIN && value <= INT8_MAX
}

/** A branch of a query: an `= ANY` branch hands rows on by their key's text, another to its one shape. */
interface Branch {
  /** A shape of the branch: its table and headers are the branch's. */
  readonly first: number
  /** The branch's query with `fields` as its select list. */
  readonly select: (fields: string) => string
  readonly keySql: string
  /** Each shape's rows counted up to `cap` (for an `= ANY` branch, each value's): `CountRow`s. */
  readonly count: (n: number, cap: number) => string
  readonly group?: string
  readonly byValue: Map<string, number[]>
  readonly only: readonly number[]
}

/** A branch's count row: its number, the key's text ('' for a branch of one shape), its rows (at most PACK_ROWS + 1). */
export interface CountRow {
  readonly branch: number
  readonly value: string
  readonly rows: string
}

/** A pack's query and where each of its rows goes. */
export interface PackQuery {
  readonly sql: string
  /** The shapes (their indices) a row of `branch` with key text `key` belongs to. */
  shapesOf(branch: number, key: Buffer): readonly number[]
}

const NONE: readonly number[] = []

function branchesOf(shapes: readonly PlannedShape[], indices: readonly number[]): Branch[] {
  const branches: Branch[] = []
  const groups = new Map<string, Branch>()
  for (const i of indices) {
    const shape = shapes[i]!
    const table = qualifiedName(shape.table.table)
    const equality = shape.headersSql ? undefined : shape.equality
    if (!equality) {
      const where = shape.whereSql === undefined ? '' : ` WHERE ${shape.whereSql}`
      branches.push({
        first: i,
        select: (fields) => `SELECT ${fields} FROM ${table}${where}`,
        keySql: `''::text`,
        count: (n, cap) => `SELECT ${n}::int4 AS branch, ''::text AS value, (SELECT count(*) FROM (SELECT FROM ${table}${where} LIMIT ${cap}) c)::text AS rows`,
        byValue: new Map(),
        only: [i],
      })
      continue
    }
    const group = [equality.column, equality.arrayType, ...shape.table.columns.map((c) => c.name)].join('\u0000')
    let branch = groups.get(group)
    if (!branch) {
      const column = quoteIdent(equality.column)
      const byValue = new Map<string, number[]>()
      const array = () => `ARRAY[${[...byValue.keys()].map(sqlLiteral).join(',')}]::${equality.arrayType}[]`
      branch = {
        first: i,
        select: (fields) => `SELECT ${fields} FROM ${table} WHERE ${column} = ANY(${array()})`,
        keySql: `${column}::text`,
        // Per value, through the column's index, and no further than a pack: a huge shape's count costs no more than a small one's.
        count: (n, cap) => `SELECT ${n}::int4 AS branch, v::text AS value, (SELECT count(*) FROM (SELECT FROM ${table} WHERE ${column} = v LIMIT ${cap}) c)::text AS rows FROM unnest(${array()}) v`,
        group,
        byValue,
        only: NONE,
      }
      groups.set(group, branch)
      branches.push(branch)
    }
    for (const value of equality.values) {
      const shapesOfValue = branch.byValue.get(value)
      if (shapesOfValue) shapesOfValue.push(i)
      else branch.byValue.set(value, [i])
    }
  }
  return branches
}

/** The statement that counts each shape's rows, up to one more than a pack holds (`CountRow`s). */
export function countSql(shapes: readonly PlannedShape[], indices: readonly number[]): string {
  return branchesOf(shapes, indices)
    .map((branch, n) => `(${branch.count(n, PACK_ROWS + 1)})`)
    .join(' UNION ALL ')
}

/** The packs to read `indices` in, smallest shapes first, from `countSql`'s rows. */
export function packsOf(shapes: readonly PlannedShape[], indices: readonly number[], counts: readonly CountRow[]): number[][] {
  const branches = branchesOf(shapes, indices)
  const size = new Map<number, number>()
  for (const count of counts) {
    const branch = branches[count.branch]!
    const rows = Number(count.rows)
    for (const i of branch.group === undefined ? branch.only : (branch.byValue.get(count.value) ?? NONE)) size.set(i, (size.get(i) ?? 0) + rows)
  }
  const bySize = [...indices].sort((a, b) => (size.get(a) ?? 0) - (size.get(b) ?? 0))
  const packs: number[][] = []
  let pack: number[] = []
  let rows = 0
  for (const i of bySize) {
    const own = size.get(i) ?? 0
    if (pack.length > 0 && rows + own > PACK_ROWS) {
      packs.push(pack)
      pack = []
      rows = 0
    }
    pack.push(i)
    rows += own
  }
  if (pack.length > 0) packs.push(pack)
  return packs
}

/** The query that reads the rows of the shapes in `pack`. */
export function packQuery(shapes: readonly PlannedShape[], pack: readonly number[]): PackQuery {
  const branches = branchesOf(shapes, pack)
  const sql = branches
    .map((branch, n) => {
      const shape = shapes[branch.first]!
      return `(${branch.select(`${distinctSql(shape.table)}${n}::int4, ${branch.keySql}, ${rowJsonSql(shape.table, {}, shape.headersSql)}`)})`
    })
    .join(' UNION ALL ')
  return {
    sql,
    shapesOf: (n, key) => {
      const branch = branches[n]!
      return branch.group === undefined ? branch.only : (branch.byValue.get(key.toString('utf8')) ?? NONE)
    },
  }
}
