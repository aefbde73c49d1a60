/**
 * LIKE and ILIKE: a port of PostgreSQL's own matcher (`like_match.c`, MatchText), so the
 * corner cases agree too — `%` any run of characters, `_` one character (code point), `\`
 * escapes the next one, and "pattern ends with the escape character" is an error only when
 * matching reaches it. ILIKE folds ASCII letters only: the C collation's case rules, which
 * the rebuilt SQL pins.
 */
import { EvaluationError } from './values.js'

const TRUE = 1
const FALSE = 0
/** No match is possible for any later start position either. */
const ABORT = -1

export function like(text: string, pattern: string, caseInsensitive: boolean): boolean {
  const t = [...(caseInsensitive ? asciiLower(text) : text)]
  const p = [...(caseInsensitive ? asciiLower(pattern) : pattern)]
  return matchText(t, 0, p, 0) === TRUE
}

function matchText(t: readonly string[], ti: number, p: readonly string[], pi: number): number {
  if (p.length - pi === 1 && p[pi] === '%') return TRUE
  while (ti < t.length && pi < p.length) {
    const pc = p[pi]!
    if (pc === '\\') {
      pi++
      if (pi >= p.length) throw escapeAtEnd()
      if (p[pi] !== t[ti]) return FALSE
    } else if (pc === '%') {
      pi++
      while (pi < p.length) {
        if (p[pi] === '%') pi++
        else if (p[pi] === '_') {
          if (ti >= t.length) return ABORT
          ti++
          pi++
        } else break
      }
      if (pi >= p.length) return TRUE
      let first = p[pi]!
      if (first === '\\') {
        if (pi + 1 >= p.length) throw escapeAtEnd()
        first = p[pi + 1]!
      }
      while (ti < t.length) {
        if (t[ti] === first) {
          const result = matchText(t, ti, p, pi)
          if (result !== FALSE) return result
        }
        ti++
      }
      return ABORT
    } else if (pc === '_') {
      ti++
      pi++
      continue
    } else if (pc !== t[ti]) {
      return FALSE
    }
    ti++
    pi++
  }
  if (ti < t.length) return FALSE
  while (pi < p.length && p[pi] === '%') pi++
  return pi >= p.length ? TRUE : ABORT
}

function escapeAtEnd(): EvaluationError {
  return new EvaluationError('LIKE pattern must not end with escape character')
}

export function asciiLower(text: string): string {
  return text.replace(/[A-Z]+/g, (s) => s.toLowerCase())
}

export function asciiUpper(text: string): string {
  return text.replace(/[a-z]+/g, (s) => s.toUpperCase())
}
