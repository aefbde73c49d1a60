/**
 * PostgreSQL array text (`{1,2}`, `{{a,b},{c,NULL}}`, `[0:1]={x,y}`, `{"with space","q\"uote"}`):
 * parsed into flat elements plus dimensions and lower bounds, and printed back the way
 * `array_out` does. Elements stay text; the caller parses them with the element type.
 */
export interface ArrayText {
  readonly elements: readonly (string | null)[]
  readonly dims: readonly number[]
  readonly lowerBounds: readonly number[]
}

/** PostgreSQL's MAXDIM. */
const MAX_DIMS = 6

/** Undefined when `text` is not a well-formed array literal. */
export function parseArrayText(text: string): ArrayText | undefined {
  const src = text.trim()
  let at = 0
  let lowerBounds: number[] | undefined
  if (src.startsWith('[')) {
    const eq = src.indexOf('=')
    if (eq === -1) return undefined
    lowerBounds = []
    const decoration = src.slice(0, eq).trim()
    const re = /\[(-?\d+):(-?\d+)\]/gy
    let consumed = 0
    for (let m = re.exec(decoration); m; m = re.exec(decoration)) {
      lowerBounds.push(Number(m[1]))
      consumed = re.lastIndex
    }
    if (consumed !== decoration.length) return undefined
    at = eq + 1
  }
  const skipSpace = () => {
    while (at < src.length && /\s/.test(src[at]!)) at++
  }
  const elements: (string | null)[] = []
  const dims: number[] = []
  /** Reads one `{...}` at `level`; false when malformed. */
  const readLevel = (level: number): boolean => {
    if (level >= MAX_DIMS) return false
    at++ // '{'
    let count = 0
    for (;;) {
      skipSpace()
      if (src[at] === '}' && count === 0) return false
      if (src[at] === '{') {
        if (dims.length !== 0 && dims.length <= level + 1) return false
        if (!readLevel(level + 1)) return false
      } else {
        // A scalar element: every scalar sits at the deepest level.
        if (dims.length !== 0 && dims.length !== level + 1) return false
        const value = readElement()
        if (value === undefined) return false
        // The first scalar fixes the number of dimensions.
        while (dims.length < level + 1) dims.push(-1)
        elements.push(value)
      }
      count++
      skipSpace()
      if (src[at] === ',') {
        at++
        continue
      }
      if (src[at] === '}') {
        at++
        if (dims[level] === undefined || dims[level] === -1) dims[level] = count
        else if (dims[level] !== count) return false
        return true
      }
      return false
    }
  }
  const readElement = (): string | null | undefined => {
    if (src[at] === '"') {
      let out = ''
      at++
      for (;;) {
        const c = src[at]
        if (c === undefined) return undefined
        if (c === '\\') {
          const next = src[at + 1]
          if (next === undefined) return undefined
          out += next
          at += 2
        } else if (c === '"') {
          at++
          return out
        } else {
          out += c
          at++
        }
      }
    }
    let raw = ''
    let escaped = false
    while (at < src.length && !',{}"'.includes(src[at]!)) {
      if (src[at] === '\\') {
        escaped = true
        raw += src[at + 1] ?? ''
        at += 2
      } else raw += src[at++]
    }
    raw = raw.trim()
    if (raw === '') return undefined
    return !escaped && raw.toUpperCase() === 'NULL' ? null : raw
  }

  skipSpace()
  if (src[at] !== '{') return undefined
  const save = at
  at++
  skipSpace()
  if (src[at] === '}') {
    at++
    skipSpace()
    return at === src.length && !lowerBounds ? { elements: [], dims: [], lowerBounds: [] } : undefined
  }
  at = save
  if (!readLevel(0)) return undefined
  skipSpace()
  if (at !== src.length || dims.some((d) => d < 0)) return undefined
  if (lowerBounds && lowerBounds.length !== dims.length) return undefined
  return { elements, dims, lowerBounds: lowerBounds ?? dims.map(() => 1) }
}

const NEEDS_QUOTES = /^$|[{}",\\\s]|^null$/i

/** `array_out`: elements quoted when they need it; bounds decoration unless all are 1. */
export function formatArrayText(array: ArrayText): string {
  if (array.dims.length === 0) return '{}'
  const parts = array.elements.map((e) => (e === null ? 'NULL' : NEEDS_QUOTES.test(e) ? `"${e.replace(/["\\]/g, '\\$&')}"` : e))
  let at = 0
  const build = (level: number): string => {
    const items: string[] = []
    for (let i = 0; i < array.dims[level]!; i++) items.push(level === array.dims.length - 1 ? parts[at++]! : build(level + 1))
    return `{${items.join(',')}}`
  }
  const body = build(0)
  if (array.lowerBounds.every((b) => b === 1)) return body
  const decoration = array.dims.map((d, i) => `[${array.lowerBounds[i]}:${array.lowerBounds[i]! + d - 1}]`).join('')
  return `${decoration}=${body}`
}
