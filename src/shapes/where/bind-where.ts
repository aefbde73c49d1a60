/**
 * Resolves a parsed `where` against the table: column names to catalog columns, every node to
 * a type by PostgreSQL's rules for the operators we support, literals to values of the type
 * their context gives them (an invalid literal is a 400 here, not an error in the snapshot).
 * BETWEEN becomes the comparisons PostgreSQL itself rewrites it to.
 */
import { InvalidRequestError } from '../../errors.js'
import type { TableInfo } from '../../pg/introspect.js'
import type { Typed } from './typed-ast.js'
import { qualifiedName } from '../../pg/sql.js'
import { foldConstants } from './fold-constants.js'
import { isKeyable } from './subquery-key.js'
import { ValueSet } from './value-set.js'
import { canCast, parseValue, type Value } from './values.js'
import type { CompareOp, WhereNode } from './where-ast.js'
import { whereErrorAt } from './where-error.js'
import {
  arrayOf,
  BOOL,
  columnType,
  commonScalar,
  commonType,
  DATETIMES,
  elementOf,
  INT4,
  INTEGERS,
  NUMBERS,
  sameType,
  scalarType,
  TEXT,
  typeName,
  UNKNOWN,
  type WhereType,
} from './where-types.js'

const ORDERING: ReadonlySet<CompareOp> = new Set(['<', '<=', '>', '>='])

/** The tables subqueries read, by `qualifiedName`; a 400 for one missing. */
export type SubqueryTables = ReadonlyMap<string, TableInfo>

const NO_TABLES: SubqueryTables = new Map()

/** Errors point at the nodes' locations in the text `node` was parsed from. */
export function bindWhere(node: WhereNode, table: TableInfo, tables: SubqueryTables = NO_TABLES): Typed {
  checkSubqueryPlacement(node, true)
  const binder = new Binder(table, tables)
  return foldConstants(binder.coerce(binder.bind(node), BOOL, 'the where clause'))
}

/**
 * A subquery may stand where AND, OR and NOT combine conditions, not inside an expression
 * (`(x IN (SELECT …)) = false`): moves in and out are decided per condition of the clause.
 */
function checkSubqueryPlacement(node: WhereNode, logical: boolean): void {
  if (node.kind === 'subquery') {
    if (!logical) throw whereErrorAt(node.at, 'a subquery can only be combined with AND, OR and NOT, not used inside an expression')
    for (const arg of node.args) checkSubqueryPlacement(arg, false)
    if (node.where) checkSubqueryPlacement(node.where, true)
    return
  }
  const inLogic = node.kind === 'and' || node.kind === 'or' || node.kind === 'not'
  for (const value of Object.values(node)) {
    for (const child of Array.isArray(value) ? value : [value]) {
      if (child && typeof child === 'object' && 'kind' in child) checkSubqueryPlacement(child as WhereNode, logical && inLogic)
    }
  }
}

class Binder {
  constructor(
    readonly table: TableInfo,
    readonly tables: SubqueryTables,
  ) {}

  bind(node: WhereNode): Typed {
    const at = node.at
    switch (node.kind) {
      case 'column': {
        const column = this.table.columns.find((c) => c.name === node.name)
        if (!column) throw this.error(`column ${JSON.stringify(node.name)} does not exist in ${this.table.table.schema}.${this.table.table.name}`, at)
        const type = columnType(column)
        if (!type) throw this.error(`column ${JSON.stringify(node.name)} has type ${column.typeName}${column.dims ? '[]' : ''}, which where does not support`, at)
        return { kind: 'column', name: column.name, type, at }
      }
      case 'literal':
        return this.literal(node.literal, node.text, at)
      case 'binary': {
        const left = this.bind(node.left)
        const right = this.bind(node.right)
        switch (node.op) {
          case '=':
          case '<>':
          case '<':
          case '<=':
          case '>':
          case '>=':
            return this.compare(node.op, left, right, at)
          case '||':
            return this.concat(left, right, at)
          case '@>':
          case '<@':
          case '&&': {
            const type = this.arrayPair(left, right, at, node.op)
            return { kind: 'arrayOp', op: node.op, left: this.coerce(left, type), right: this.coerce(right, type), type: BOOL, at }
          }
          default:
            return this.arithmetic(node.op, left, right, at)
        }
      }
      case 'negate': {
        const arg = this.bind(node.arg)
        if (arg.type.array || !NUMBERS.has(arg.type.scalar)) throw this.error(`cannot negate a value of type ${typeName(arg.type)}`, at)
        return { kind: 'negate', arg, type: arg.type, at }
      }
      case 'and':
      case 'or':
        return { kind: node.kind, args: node.args.map((a) => this.coerce(this.bind(a), BOOL, node.kind.toUpperCase())), type: BOOL, at }
      case 'not':
        return { kind: 'not', arg: this.coerce(this.bind(node.arg), BOOL, 'NOT'), type: BOOL, at }
      case 'in': {
        const arg = this.bind(node.arg)
        // Each item compares with `=` on its own, which gives PostgreSQL's answers for IN.
        const comparisons = node.list.map((item) => this.compare('=', arg, this.bind(item), item.at))
        const list = comparisons.map((c) => unconvert((c as Extract<Typed, { kind: 'compare' }>).right))
        return { kind: 'in', arg, list, comparisons, negated: node.negated, type: BOOL, at }
      }
      case 'between': {
        // PostgreSQL rewrites BETWEEN to these comparisons itself (transformAExprBetween).
        const arg = () => this.bind(node.arg)
        const within = (low: WhereNode, high: WhereNode): Typed =>
          node.negated
            ? { kind: 'or', args: [this.compare('<', arg(), this.bind(low), at), this.compare('>', arg(), this.bind(high), at)], type: BOOL, at }
            : { kind: 'and', args: [this.compare('>=', arg(), this.bind(low), at), this.compare('<=', arg(), this.bind(high), at)], type: BOOL, at }
        if (!node.symmetric) return within(node.low, node.high)
        return { kind: node.negated ? 'and' : 'or', args: [within(node.low, node.high), within(node.high, node.low)], type: BOOL, at }
      }
      case 'isNull': {
        const arg = this.bind(node.arg)
        return { kind: 'isNull', arg: arg.type.scalar === 'unknown' ? this.coerce(arg, TEXT) : arg, negated: node.negated, type: BOOL, at }
      }
      case 'isBool':
        return { kind: 'isBool', arg: this.coerce(this.bind(node.arg), BOOL, `IS ${node.value.toUpperCase()}`), value: node.value, negated: node.negated, type: BOOL, at }
      case 'distinct': {
        const cmp = this.compare('=', this.bind(node.left), this.bind(node.right), at) as Extract<Typed, { kind: 'compare' }>
        return { kind: 'distinct', left: cmp.left, right: cmp.right, negated: node.negated, type: BOOL, at }
      }
      case 'like': {
        const what = node.caseInsensitive ? 'ILIKE' : 'LIKE'
        return {
          kind: 'like',
          arg: this.coerce(this.bind(node.arg), TEXT, what),
          pattern: this.coerce(this.bind(node.pattern), TEXT, what),
          negated: node.negated,
          caseInsensitive: node.caseInsensitive,
          type: BOOL,
          at,
        }
      }
      case 'cast': {
        const arg = this.bind(node.arg)
        const base = scalarType(node.typeName as WhereType['scalar'])
        const type = node.array ? arrayOf(base) : base
        if (arg.kind === 'const' && arg.type.scalar === 'unknown') return this.coerce(arg, type)
        if (arg.kind === 'array' && arg.type.scalar === 'unknown') return this.coerce(arg, type)
        if (!canCast(arg.type, type)) throw this.error(`cannot cast ${typeName(arg.type)} to ${typeName(type)} in where`, at)
        return { kind: 'cast', arg, type, at }
      }
      case 'quantified': {
        const left = this.bind(node.left)
        const right = this.bind(node.right)
        const elementType = right.type.array ? elementOf(right.type) : right.type.scalar === 'unknown' ? left.type : undefined
        if (!elementType) throw this.error(`${node.all ? 'ALL' : 'ANY'} needs an array on its right, got ${typeName(right.type)}`, at)
        const common = commonScalar(left.type.scalar === 'unknown' ? elementType : left.type, elementType)
        if (!common || (right.type.array && !sameType(common, elementOf(right.type)) && !isWidening(elementOf(right.type), common))) {
          throw this.error(`cannot compare ${typeName(left.type)} with elements of ${typeName(right.type)}`, at)
        }
        this.checkOrdering(node.op, common, at)
        const arrayType = right.type.array ? right.type : arrayOf(common)
        return { kind: 'quantified', op: node.op, left: this.coerce(left, common), right: this.coerce(right, arrayType), all: node.all, type: BOOL, at }
      }
      case 'array': {
        const elements = node.elements.map((e) => this.bind(e))
        if (elements.some((e) => e.type.array)) throw this.error('multi-dimensional ARRAY[] constructors are not supported', at)
        let element: WhereType = UNKNOWN
        for (const e of elements) {
          const common = commonScalar(element, e.type)
          if (!common) throw this.error(`ARRAY elements of types ${typeName(element)} and ${typeName(e.type)} do not match`, e.at)
          element = common
        }
        if (element.scalar === 'unknown') return { kind: 'array', elements, type: arrayOf(UNKNOWN), at }
        return { kind: 'array', elements: elements.map((e) => this.coerce(e, element)), type: arrayOf(element), at }
      }
      case 'call':
        return this.call(node.name, node.args.map((a) => this.bind(a)), at)
      case 'subquery':
        return this.subquery(node, at)
    }
  }

  subquery(node: Extract<WhereNode, { kind: 'subquery' }>, at: number): Typed {
    const inner = this.tables.get(qualifiedName(node.table))
    if (!inner) throw this.error(`table ${node.table.schema}.${node.table.name} is not available to subqueries`, node.tableAt)
    const innerBinder = new Binder(inner, this.tables)
    const args: Typed[] = []
    const columns: Typed[] = []
    node.args.forEach((written, i) => {
      const arg = this.bind(written)
      const column = innerBinder.bind(node.columns[i]!)
      const type = commonType(arg.type, column.type)
      if (!type) throw this.error(`cannot compare ${typeName(arg.type)} with ${typeName(column.type)} in IN (SELECT …)`, written.at)
      if (!isKeyable(type)) {
        throw this.error(`IN (SELECT …) cannot compare ${typeName(type)} values (supported: integers, numeric, text, uuid, bool, enums, date)`, written.at)
      }
      args.push(this.coerce(arg, type))
      columns.push(innerBinder.coerce(column, type))
    })
    const where = node.where && foldConstants(innerBinder.coerce(innerBinder.bind(node.where), BOOL, "the subquery's WHERE"))
    return { kind: 'subquery', args, table: inner, columns, where, values: { set: new ValueSet() }, type: BOOL, at }
  }

  literal(kind: string, text: string, at: number): Typed {
    switch (kind) {
      case 'integer': {
        const value = BigInt(text)
        // PostgreSQL: int4 when it fits, else int8, else numeric.
        if (value >= -(2n ** 31n) && value < 2n ** 31n) return { kind: 'const', value, type: INT4, at }
        if (value >= -(2n ** 63n) && value < 2n ** 63n) return { kind: 'const', value, type: scalarType('int8'), at }
        return this.parsed(scalarType('numeric'), text, at)
      }
      case 'decimal':
        return this.parsed(scalarType('numeric'), text, at)
      case 'boolean':
        return { kind: 'const', value: text === 'true', type: BOOL, at }
      case 'null':
        return { kind: 'const', value: null, type: UNKNOWN, at }
      default:
        return { kind: 'const', value: text, type: UNKNOWN, at }
    }
  }

  parsed(type: WhereType, text: string, at: number): Typed {
    const value = parseValue(type, text)
    if (value === undefined) throw this.error(`invalid ${typeName(type)} value ${JSON.stringify(text)}${hint(type)}`, at)
    return { kind: 'const', value, type, at }
  }

  /** `node` as a value of `type`: unknown literals take the type, numbers and dates widen. */
  coerce(node: Typed, type: WhereType, context?: string): Typed {
    if (sameType(node.type, type)) return node
    if (node.type.scalar === 'unknown') {
      if (node.kind === 'const') {
        if (node.value === null) return { ...node, type }
        return this.parsed(type, node.value as string, node.at)
      }
      if (node.kind === 'array' && type.array) {
        return { ...node, elements: node.elements.map((e) => this.coerce(e, elementOf(type))), type }
      }
    }
    if (!node.type.array && !type.array && isWidening(node.type, type)) return { kind: 'convert', arg: node, type, at: node.at }
    const where = context ? ` in ${context}` : ''
    throw this.error(`expected ${typeName(type)}${where}, got ${typeName(node.type)}`, node.at)
  }

  compare(op: CompareOp, left: Typed, right: Typed, at: number): Typed {
    const type = commonType(left.type, right.type)
    if (!type) throw this.error(`cannot compare ${typeName(left.type)} with ${typeName(right.type)}`, at)
    if (type.array && op !== '=' && op !== '<>') throw this.error('arrays can only be compared with = and <>', at)
    this.checkOrdering(op, type, at)
    return { kind: 'compare', op, left: this.coerce(left, type), right: this.coerce(right, type), type: BOOL, at }
  }

  checkOrdering(op: CompareOp, type: WhereType, at: number): void {
    if (!ORDERING.has(op)) return
    if (type.scalar === 'bool' || type.scalar === 'uuid' || NUMBERS.has(type.scalar) || DATETIMES.has(type.scalar) || type.scalar === 'text') return
    if (type.scalar === 'enum' && type.enumLabels) return
    throw this.error(`${op} is not supported for ${typeName(type)}`, at)
  }

  arrayPair(left: Typed, right: Typed, at: number, op: string): WhereType {
    const type = left.type.array ? left.type : right.type.array ? right.type : undefined
    if (!type || type.scalar === 'unknown') throw this.error(`${op} needs arrays of a known type`, at)
    for (const side of [left, right]) {
      if (!(side.type.scalar === 'unknown' || (side.type.array && sameType(side.type, type)))) {
        throw this.error(`${op} needs two arrays of the same type, got ${typeName(left.type)} and ${typeName(right.type)}`, at)
      }
    }
    return type
  }

  concat(left: Typed, right: Typed, at: number): Typed {
    const isText = (t: WhereType) => !t.array && (t.scalar === 'text' || t.scalar === 'unknown')
    if (!isText(left.type) && !isText(right.type)) throw this.error(`|| needs a text operand, got ${typeName(left.type)} and ${typeName(right.type)}`, at)
    for (const side of [left, right]) {
      if (side.type.array) throw this.error('|| on arrays is not supported', side.at)
      if (side.type.scalar === 'float4' || side.type.scalar === 'float8' || side.type.scalar === 'timestamp' || side.type.scalar === 'timestamptz') {
        throw this.error(`|| with a ${side.type.scalar} value is not supported`, side.at)
      }
    }
    const asText = (t: Typed) => (t.type.scalar === 'unknown' ? this.coerce(t, TEXT) : t)
    return { kind: 'concat', left: asText(left), right: asText(right), type: TEXT, at }
  }

  arithmetic(op: '+' | '-' | '*' | '/' | '%', left: Typed, right: Typed, at: number): Typed {
    const l = left.type
    const r = right.type
    const fail = () => this.error(`operator ${op} is not supported for ${typeName(l)} and ${typeName(r)}`, at)
    if (l.array || r.array) throw fail()
    // date ± integer and date - date.
    if (l.scalar === 'date' && (op === '+' || op === '-') && (INTEGERS.has(r.scalar) || r.scalar === 'unknown')) {
      if (r.scalar === 'unknown' && op === '-') throw this.error('date - unknown is ambiguous: cast the literal', at)
      return { kind: 'arith', op, left, right: this.coerce(right, INT4), type: scalarType('date'), at }
    }
    if (op === '+' && r.scalar === 'date' && (INTEGERS.has(l.scalar) || l.scalar === 'unknown')) {
      return { kind: 'arith', op, left: this.coerce(left, INT4), right, type: scalarType('date'), at }
    }
    if (l.scalar === 'date' && r.scalar === 'date' && op === '-') return { kind: 'arith', op, left, right, type: INT4, at }
    if (l.scalar === 'unknown' && r.scalar === 'unknown') throw this.error(`operator ${op} on two untyped literals is ambiguous: cast one`, at)
    const type = commonScalar(l, r)
    if (!type || !NUMBERS.has(type.scalar)) throw fail()
    if ((type.scalar === 'float4' || type.scalar === 'float8') && op === '%') throw fail()
    return { kind: 'arith', op, left: this.coerce(left, type), right: this.coerce(right, type), type, at }
  }

  call(name: string, args: Typed[], at: number): Typed {
    switch (name) {
      case 'lower':
      case 'upper':
        return { kind: 'call', name, args: [this.coerce(args[0]!, TEXT, `${name}()`)], type: TEXT, at }
      case 'length':
        return { kind: 'call', name, args: [this.coerce(args[0]!, TEXT, 'length()')], type: INT4, at }
      case 'abs': {
        const arg = args[0]!
        if (arg.type.array || !NUMBERS.has(arg.type.scalar)) throw this.error(`abs() needs a number, got ${typeName(arg.type)}`, at)
        return { kind: 'call', name, args: [arg], type: arg.type, at }
      }
      default: {
        let type: WhereType = UNKNOWN
        for (const a of args) {
          const common = commonType(type, a.type)
          if (!common) throw this.error(`COALESCE arguments of types ${typeName(type)} and ${typeName(a.type)} do not match`, a.at)
          type = common
        }
        if (type.scalar === 'unknown') type = TEXT
        return { kind: 'call', name: 'coalesce', args: args.map((a) => this.coerce(a, type)), type, at }
      }
    }
  }

  error(message: string, at: number): InvalidRequestError {
    return whereErrorAt(at, message)
  }
}

function unconvert(node: Typed): Typed {
  return node.kind === 'convert' ? node.arg : node
}

/** Conversions PostgreSQL applies implicitly between the types we support. */
function isWidening(from: WhereType, to: WhereType): boolean {
  if (from.array || to.array) return false
  const common = commonScalar(from, to)
  return common !== undefined && sameType(common, to) && !sameType(from, to)
}

function hint(type: WhereType): string {
  if (DATETIMES.has(type.scalar)) return ' (use ISO 8601: YYYY-MM-DD[ HH:MM[:SS[.ffffff]]][Z|±HH[:MM]])'
  return ''
}

export type { Value }
