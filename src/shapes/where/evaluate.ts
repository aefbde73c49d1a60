/**
 * Evaluates a typed `where` on one row of text values, in TypeScript, with PostgreSQL's
 * semantics: three-valued logic (null is "unknown"), exact integer and numeric arithmetic,
 * PostgreSQL's float, date and timestamp comparisons, C-collation text order, and run-time
 * errors (overflow, division by zero, bad cast input) as `EvaluationError`.
 * The tree is turned into closures once, so a row costs only the work of its expression.
 */
import { arithmeticOn } from './arithmetic.js'
import { absDecimal, negateDecimal, type Decimal } from './decimal.js'
import { asciiLower, asciiUpper, like } from './like.js'
import { valueKey } from './subquery-key.js'
import type { Typed } from './typed-ast.js'
import { tupleKey } from './value-set.js'
import {
  arraysEqual,
  checkInt,
  compareScalars,
  convertScalar,
  EvaluationError,
  formatScalar,
  parseValue,
  type ArrayValue,
  type ScalarValue,
  type Value,
} from './values.js'
import { elementOf, INTEGERS } from './where-types.js'

export type Row = Readonly<Record<string, string | null | undefined>>
type Fn = (row: Row) => Value | null

export function buildEvaluator(node: Typed): (row: Row) => boolean | null {
  const fn = build(node)
  return (row) => fn(row) as boolean | null
}

function build(node: Typed): Fn {
  switch (node.kind) {
    case 'column': {
      const { name, type } = node
      return (row) => {
        const text = row[name]
        if (text === null || text === undefined) return null
        const value = parseValue(type, text)
        if (value === undefined) throw new EvaluationError(`cannot read ${JSON.stringify(text)} as ${type.scalar}`)
        return value
      }
    }
    case 'const': {
      const value = node.value
      return () => value
    }
    case 'convert':
    case 'cast': {
      const arg = build(node.arg)
      const from = node.arg.type
      const to = node.type
      if (from.array || to.array) {
        return (row) => {
          const v = arg(row)
          if (v === null) return null
          if (from.scalar === 'unknown' || from.scalar === 'text') {
            const parsed = parseValue(to, v as string)
            if (parsed === undefined) throw new EvaluationError(`malformed array literal: ${JSON.stringify(v)}`)
            return parsed
          }
          return v
        }
      }
      return (row) => {
        const v = arg(row)
        return v === null ? null : convertScalar(from, to, v as ScalarValue)
      }
    }
    case 'compare': {
      const left = build(node.left)
      const right = build(node.right)
      const test = comparison(node.op)
      const type = node.left.type
      return (row) => {
        const l = left(row)
        if (l === null) return null
        const r = right(row)
        if (r === null) return null
        if (type.array) return arraysEqual(type, l as ArrayValue, r as ArrayValue) === (node.op === '=')
        return test(compareScalars(type, l as ScalarValue, r as ScalarValue))
      }
    }
    case 'in': {
      const comparisons = node.comparisons.map(build)
      const negated = node.negated
      return (row) => {
        let sawNull = false
        for (const c of comparisons) {
          const v = c(row)
          if (v === true) return !negated
          if (v === null) sawNull = true
        }
        return sawNull ? null : negated
      }
    }
    case 'and':
    case 'or': {
      const args = node.args.map(build)
      const decisive = node.kind === 'or'
      // A decisive argument wins even over another argument's error: PostgreSQL may evaluate
      // (or constant-fold) the arguments in any order, so only a result no order avoids is an error.
      return (row) => {
        let sawNull = false
        let failure: unknown
        for (const a of args) {
          let v: Value | null
          try {
            v = a(row)
          } catch (error) {
            failure ??= error
            continue
          }
          if (v === decisive) return decisive
          if (v === null) sawNull = true
        }
        if (failure !== undefined) throw failure
        return sawNull ? null : !decisive
      }
    }
    case 'not': {
      const arg = build(node.arg)
      return (row) => {
        const v = arg(row)
        return v === null ? null : !v
      }
    }
    case 'isNull': {
      const arg = build(node.arg)
      const negated = node.negated
      return (row) => (arg(row) === null) !== negated
    }
    case 'isBool': {
      const arg = build(node.arg)
      const { value, negated } = node
      return (row) => {
        const v = arg(row)
        const holds = value === 'unknown' ? v === null : v === (value === 'true')
        return holds !== negated
      }
    }
    case 'distinct': {
      const left = build(node.left)
      const right = build(node.right)
      const type = node.left.type
      const negated = node.negated
      return (row) => {
        const l = left(row)
        const r = right(row)
        let same: boolean
        if (l === null || r === null) same = l === r
        else if (type.array) same = arraysEqual(type, l as ArrayValue, r as ArrayValue)
        else same = compareScalars(type, l as ScalarValue, r as ScalarValue) === 0
        return same === negated
      }
    }
    case 'like': {
      const arg = build(node.arg)
      const pattern = build(node.pattern)
      const { negated, caseInsensitive } = node
      return (row) => {
        const text = arg(row)
        if (text === null) return null
        const p = pattern(row)
        if (p === null) return null
        return like(text as string, p as string, caseInsensitive) !== negated
      }
    }
    case 'quantified': {
      const left = build(node.left)
      const right = build(node.right)
      const test = comparison(node.op)
      const type = node.left.type
      const elementType = elementOf(node.right.type)
      const all = node.all
      return (row) => {
        const array = right(row) as ArrayValue | null
        if (array === null) return null
        if (array.elements.length === 0) return all
        const l = left(row)
        if (l === null) return null
        let sawNull = false
        for (const e of array.elements) {
          if (e === null) {
            sawNull = true
            continue
          }
          const holds = test(compareScalars(type, l as ScalarValue, convertScalar(elementType, type, e)))
          if (holds !== all) return !all
        }
        return sawNull ? null : all
      }
    }
    case 'arrayOp': {
      const left = build(node.left)
      const right = build(node.right)
      const element = elementOf(node.left.type)
      const contains = (a: ArrayValue, b: ArrayValue) =>
        b.elements.every((y) => y !== null && a.elements.some((x) => x !== null && compareScalars(element, x, y) === 0))
      const op = node.op
      return (row) => {
        const l = left(row) as ArrayValue | null
        if (l === null) return null
        const r = right(row) as ArrayValue | null
        if (r === null) return null
        if (op === '@>') return contains(l, r)
        if (op === '<@') return contains(r, l)
        return l.elements.some((x) => x !== null && r.elements.some((y) => y !== null && compareScalars(element, x, y) === 0))
      }
    }
    case 'array': {
      const elements = node.elements.map(build)
      return (row) => {
        const values = elements.map((e) => e(row) as ScalarValue | null)
        return { elements: values, dims: values.length === 0 ? [] : [values.length], lowerBounds: values.length === 0 ? [] : [1] }
      }
    }
    case 'concat': {
      const left = build(node.left)
      const right = build(node.right)
      const lt = node.left.type
      const rt = node.right.type
      return (row) => {
        const l = left(row)
        if (l === null) return null
        const r = right(row)
        if (r === null) return null
        return formatScalar(lt, l as ScalarValue) + formatScalar(rt, r as ScalarValue)
      }
    }
    case 'negate': {
      const arg = build(node.arg)
      const type = node.type
      return (row) => {
        const v = arg(row)
        if (v === null) return null
        if (INTEGERS.has(type.scalar)) return checkInt(-(v as bigint), type.scalar)
        if (type.scalar === 'numeric') return negateDecimal(v as Decimal)
        return -(v as number)
      }
    }
    case 'arith':
      return arithmetic(node)
    case 'call':
      return call(node)
    case 'subquery':
      return subquery(node)
  }
}

function comparison(op: string): (c: number) => boolean {
  switch (op) {
    case '=':
      return (c) => c === 0
    case '<>':
      return (c) => c !== 0
    case '<':
      return (c) => c < 0
    case '<=':
      return (c) => c <= 0
    case '>':
      return (c) => c > 0
    default:
      return (c) => c >= 0
  }
}

function arithmetic(node: Extract<Typed, { kind: 'arith' }>): Fn {
  const left = build(node.left)
  const right = build(node.right)
  const op = node.op
  const type = node.type
  const lt = node.left.type
  const compute = arithmeticOn(type, lt, op)
  return (row) => {
    const l = left(row)
    if (l === null) return null
    const r = right(row)
    if (r === null) return null
    return compute(l as ScalarValue, r as ScalarValue)
  }
}

/** `args IN (SELECT …)` against the tuples the runtime keeps, with PostgreSQL's NULL rules. */
function subquery(node: Extract<Typed, { kind: 'subquery' }>): Fn {
  const args = node.args.map(build)
  const types = node.args.map((arg) => arg.type)
  const values = node.values
  return (row) => {
    const parts = args.map((arg, i) => {
      const v = arg(row)
      return v === null ? null : valueKey(types[i]!, v as ScalarValue)
    })
    const set = values.set
    if (!parts.includes(null)) {
      if (set.has(tupleKey(parts))) return true
      if (!set.hasNullTuples) return false
    }
    if (set.size === 0) return false
    return set.unknownMatch(parts) ? null : false
  }
}

function call(node: Extract<Typed, { kind: 'call' }>): Fn {
  const args = node.args.map(build)
  const arg = args[0]!
  switch (node.name) {
    case 'lower':
    case 'upper': {
      const fold = node.name === 'lower' ? asciiLower : asciiUpper
      return (row) => {
        const v = arg(row)
        return v === null ? null : fold(v as string)
      }
    }
    case 'length':
      return (row) => {
        const v = arg(row)
        if (v === null) return null
        let n = 0
        for (const _ of v as string) n++
        return BigInt(n)
      }
    case 'abs': {
      const type = node.type
      return (row) => {
        const v = arg(row)
        if (v === null) return null
        if (INTEGERS.has(type.scalar)) return checkInt((v as bigint) < 0n ? -(v as bigint) : (v as bigint), type.scalar)
        if (type.scalar === 'numeric') return absDecimal(v as Decimal)
        return Math.abs(v as number)
      }
    }
    case 'coalesce':
      return (row) => {
        for (const a of args) {
          const v = a(row)
          if (v !== null) return v
        }
        return null
      }
  }
}
