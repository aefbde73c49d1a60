/**
 * Parses of clients' `where` texts shared by their families (docs/ARCHITECTURE.md I31). After a
 * deploy every user of a per-user app asks for `user_id = <k>` at once, and PostgreSQL's parser
 * was the largest single part of creating such a shape. Texts that differ only in small integer
 * and plain string constants lex to the same tokens in the same order, with those constants as
 * their only difference, so they parse to the same tree with other constants: the first text of a
 * family is parsed, and checked to have exactly one literal node per such constant (at its
 * position, with its value); the others take that tree with their own constants and positions.
 *
 * Only texts the lexer cannot read another way are shared: outside the constants, nothing but
 * identifiers, quoted identifiers, spaces, tabs and `=<>!(),.` (no `-`, so no comment and no sign
 * folded into a number; no `$`, so no parameter; no line break, so no string continued on the next
 * line; no `SELECT`, so no subquery), integers of one to nine digits with no leading zero and no
 * letter, digit, `.` or `_` next to them, and strings with no backslash and no prefix (`E'`,
 * `U&'`). Positions are in bytes of UTF-8, as PostgreSQL gives them.
 *
 * Other texts (a subquery, a parameter) are kept by their exact text and the values of the
 * parameters they read: a live request repeats its shape's where with every poll, and each was
 * parsed again (a subquery shape's move-ins cost a poll each). The same text with the same values
 * parses to the same tree. Trees given out are shared and read only, as a family's first tree
 * always was.
 */
import { parseWhere, WHERE_LIMITS, type ParamReader } from './parse-where.js'
import type { WhereNode } from './where-ast.js'

/** A quoted identifier (kept in the family's text), a plain string, or a small integer. */
const TOKENS = /"(?:[^"]|"")*"|(?<![\w&'])'((?:[^'\\]|'')*)'|(?<![\w.$])(?:0|[1-9]\d{0,8})(?![\w.])/g
/** What a family's text may hold besides its constants' marks. */
const FAMILY_TEXT = /^(?:"(?:[^"]|"")*"|[\w \t=<>!(),.\u0001\u0002])*$/
const INTEGER_MARK = '\u0001'
const STRING_MARK = '\u0002'
const MARKS = /[\u0001\u0002]/

/** Families kept at most; the oldest goes first. */
export const WHERE_FAMILIES = 1_000
/** Exact texts (with their parameters' values) kept at most; the least recently asked for goes first. */
export const EXACT_WHERES = 2_000

interface Constant {
  readonly literal: 'integer' | 'string'
  readonly text: string
  /** UTF-8 bytes into the clause, and the token's length in bytes. */
  readonly at: number
  readonly bytes: number
}

interface Family {
  readonly tree: WhereNode
  readonly constants: readonly Constant[]
}

export class WhereFamilies {
  readonly #families = new Map<string, Family>()
  readonly #max: number
  /** Trees of texts no family shares, by `exactKey`. */
  readonly #exact = new Map<string, WhereNode>()
  /** The parameters each such text reads (what its key holds besides the text). */
  readonly #paramsRead = new Map<string, readonly number[]>()
  readonly #maxExact: number
  #parses = 0

  constructor(max = WHERE_FAMILIES, maxExact = EXACT_WHERES) {
    this.#max = max
    this.#maxExact = maxExact
  }

  /** Texts given to PostgreSQL's parser so far (the others took their family's tree). */
  get parses(): number {
    return this.#parses
  }

  /** As `parseWhere(text, params)`. Throws InvalidRequestError. */
  parse(text: string, params: ParamReader): WhereNode {
    const family = familyOf(text)
    const known = family && this.#families.get(family.text)
    if (known && text.length <= WHERE_LIMITS.maxLength) return withConstants(known, family.constants)
    const read = this.#paramsRead.get(text)
    const key = read && exactKey(text, read, params)
    const kept = key !== undefined ? this.#exact.get(key) : undefined
    if (kept) {
      // Most recently asked for last, so the least goes first.
      this.#exact.delete(key!)
      this.#exact.set(key!, kept)
      return kept
    }
    this.#parses++
    const reading: number[] = []
    const tree = parseWhere(text, (n) => {
      reading.push(n)
      return params(n)
    })
    if (family && hasEachConstant(tree, family.constants)) {
      if (this.#families.size >= this.#max) this.#families.delete(this.#families.keys().next().value!)
      this.#families.set(family.text, { tree, constants: family.constants })
    } else {
      if (this.#exact.size >= this.#maxExact) this.#exact.delete(this.#exact.keys().next().value!)
      if (this.#paramsRead.size >= this.#maxExact) this.#paramsRead.delete(this.#paramsRead.keys().next().value!)
      this.#paramsRead.set(text, reading)
      this.#exact.set(exactKey(text, reading, params), tree)
    }
    return tree
  }
}

/** A text with the values of the parameters it reads: equal keys parse to equal trees. */
function exactKey(text: string, read: readonly number[], params: ParamReader): string {
  return JSON.stringify([text, ...read.map((n) => params(n) ?? null)])
}

/** The text with its constants marked, and the constants; undefined when it cannot be shared. */
function familyOf(text: string): { text: string; constants: Constant[] } | undefined {
  if (MARKS.test(text) || text.includes('\u0000') || /select/i.test(text)) return undefined
  const constants: Constant[] = []
  let bytes = 0
  let last = 0
  const marked = text.replace(TOKENS, (token: string, quoted: string | undefined, offset: number) => {
    bytes += Buffer.byteLength(text.slice(last, offset))
    last = offset + token.length
    const length = Buffer.byteLength(token)
    const at = bytes
    bytes += length
    if (token.startsWith('"')) return token
    if (quoted !== undefined) {
      constants.push({ literal: 'string', text: quoted.replaceAll("''", "'"), at, bytes: length })
      return STRING_MARK
    }
    constants.push({ literal: 'integer', text: token, at, bytes: length })
    return INTEGER_MARK
  })
  return constants.length > 0 && FAMILY_TEXT.test(marked) ? { text: marked, constants } : undefined
}

/** Each constant is a literal node of its own at its position with its value: PostgreSQL lexed it as marked. */
function hasEachConstant(tree: WhereNode, constants: readonly Constant[]): boolean {
  const literals = new Map<number, WhereNode>()
  visit(tree, (node) => {
    if (node.kind === 'literal') literals.set(node.at, node)
  })
  return constants.every((constant) => {
    const node = literals.get(constant.at)
    return node?.kind === 'literal' && node.literal === constant.literal && node.text === constant.text
  })
}

function visit(node: WhereNode, each: (node: WhereNode) => void): void {
  each(node)
  for (const value of Object.values(node)) {
    for (const child of Array.isArray(value) ? value : [value]) {
      if (child !== null && typeof child === 'object' && 'kind' in child) visit(child as WhereNode, each)
    }
  }
}

/** The family's tree with `constants` in place of its own, every position moved by the lengths before it. */
function withConstants(family: Family, constants: readonly Constant[]): WhereNode {
  const own = family.constants
  const moved = (at: number) => {
    let shift = 0
    for (let i = 0; i < own.length && own[i]!.at < at; i++) shift += constants[i]!.bytes - own[i]!.bytes
    return at + shift
  }
  const byPosition = new Map(own.map((constant, i) => [constant.at, constants[i]!]))
  const rebuild = (value: unknown): unknown => {
    if (Array.isArray(value)) return value.map(rebuild)
    if (value === null || typeof value !== 'object' || !('kind' in value)) return value
    const node = value as WhereNode
    const constant = node.kind === 'literal' ? byPosition.get(node.at) : undefined
    if (constant) return { kind: 'literal', literal: constant.literal, text: constant.text, at: constant.at }
    const copy: Record<string, unknown> = {}
    for (const [key, child] of Object.entries(node)) copy[key] = key === 'at' ? moved(node.at) : rebuild(child)
    return copy
  }
  return rebuild(family.tree) as WhereNode
}
