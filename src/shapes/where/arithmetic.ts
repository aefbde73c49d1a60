/**
 * PostgreSQL's arithmetic on one pair of scalar values, chosen once per operator and type:
 * exact integers with overflow checks, exact numerics, floats as IEEE doubles (float4 rounded),
 * and date arithmetic in days. Errors are `EvaluationError`, as PostgreSQL's are run-time errors.
 */
import { addDecimals, divideDecimals, moduloDecimals, multiplyDecimals, NumericError, type Decimal } from './decimal.js'
import { DATE_NEG_INFINITY, DATE_POS_INFINITY } from './datetime.js'
import { checkFloat4, checkInt, EvaluationError, type ScalarValue } from './values.js'
import { INTEGERS, type WhereType } from './where-types.js'

export function arithmeticOn(type: WhereType, leftType: WhereType, op: string): (l: ScalarValue, r: ScalarValue) => ScalarValue {
  if (type.scalar === 'date' || leftType.scalar === 'date') {
    return (l, r) => {
      if (leftType.scalar === 'date' && type.scalar !== 'date') {
        // date - date: days between; infinities cannot be subtracted.
        const a = l as number
        const b = r as number
        if ([a, b].some((d) => d === DATE_POS_INFINITY || d === DATE_NEG_INFINITY)) throw new EvaluationError('cannot subtract infinite dates')
        return checkInt(BigInt(a - b), 'int4')
      }
      const date = (leftType.scalar === 'date' ? l : r) as number
      const days = Number(leftType.scalar === 'date' ? r : l) * (op === '-' ? -1 : 1)
      if (date === DATE_POS_INFINITY || date === DATE_NEG_INFINITY) return date
      return date + days
    }
  }
  if (INTEGERS.has(type.scalar)) {
    return (l, r) => {
      const a = l as bigint
      const b = r as bigint
      switch (op) {
        case '+':
          return checkInt(a + b, type.scalar)
        case '-':
          return checkInt(a - b, type.scalar)
        case '*':
          return checkInt(a * b, type.scalar)
        case '/':
          if (b === 0n) throw new EvaluationError('division by zero')
          return checkInt(a / b, type.scalar)
        default:
          if (b === 0n) throw new EvaluationError('division by zero')
          return b === -1n ? 0n : a % b
      }
    }
  }
  if (type.scalar === 'numeric') {
    return (l, r) => {
      const a = l as Decimal
      const b = r as Decimal
      try {
        if (op === '*') return multiplyDecimals(a, b)
        if (op === '/') return divideDecimals(a, b)
        if (op === '%') return moduloDecimals(a, b)
        return addDecimals(a, b, op === '-')
      } catch (error) {
        if (error instanceof NumericError) throw new EvaluationError(error.message)
        throw error
      }
    }
  }
  const float4 = type.scalar === 'float4'
  return (l, r) => {
    const a = l as number
    const b = r as number
    let result: number
    switch (op) {
      case '+':
        result = a + b
        break
      case '-':
        result = a - b
        break
      case '*':
        result = a * b
        break
      default:
        // PostgreSQL lets NaN / 0 be NaN; any other division by zero is an error.
        if (b === 0 && !Number.isNaN(a)) throw new EvaluationError('division by zero')
        result = a / b
    }
    const finite = Number.isFinite(a) && Number.isFinite(b)
    if (float4) return checkFloat4(result, finite)
    if (!Number.isFinite(result) && !Number.isNaN(result) && finite) throw new EvaluationError('value out of range: overflow')
    if (result === 0 && a !== 0 && (op === '*' ? b !== 0 : op === '/' && Number.isFinite(b))) throw new EvaluationError('value out of range: underflow')
    return result
  }
}
