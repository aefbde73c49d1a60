/**
 * Compiles canonical wheres: those of stored shapes at a restart (docs/ARCHITECTURE.md I31), and
 * those a worker process sends the owner with a new shape (parsed in the worker). Per-user shapes
 * differ only in their constants (`("user_id" = 1)`, `("user_id" = 2)`, …), and PostgreSQL's
 * parser was the largest part of a restart with 100,000 of them. So shapes whose canonical wheres
 * differ only in their literals share one parse: each gets the shared tree with its own literals
 * put in, taken only if it renders back to the shape's exact canonical text. Canonical text is one
 * spelling per tree and parses back to the tree it came from (`where/canonical.ts`), so that tree
 * is the one parsing the text would give; any other text is parsed as before.
 */
import type { TableInfo } from '../pg/introspect.js'
import type { ShapeDefinition } from './shape-definition.js'
import { canonicalWhere } from './where/canonical.js'
import { compileParsedWhere, compileWhere, type CompiledWhere, type SubqueryTables } from './where/compile-where.js'
import { parseWhere } from './where/parse-where.js'
import type { LiteralKind, WhereNode } from './where/where-ast.js'

/**
 * In canonical text: a quoted identifier (kept as it is), a string literal, or a number that is
 * not part of a word (`int4`); a number's sign is its own, as the parser folds `-3` into it.
 */
const TOKENS = /"(?:[^"]|"")*"|'((?:[^']|'')*)'|(?<![\w.])-?(?:\d+\.?\d*|\.\d+)(?:e[+-]?\d+)?/gi
const NUMBER_MARK = '\u0001'
const STRING_MARK = '\u0002'
const noParams = () => undefined

type Literal = { readonly literal: LiteralKind; readonly text: string }

/** Families a long-lived instance keeps (each a parsed tree of a few KB). */
export const WHERE_FAMILIES = 1_000

export class StoredWheres {
  /** A parsed where by its text with every literal replaced by a mark of its kind. */
  readonly #trees = new Map<string, WhereNode>()
  /** Families kept at most; the oldest goes first (a long-lived instance sees what clients send). */
  readonly #maxTrees: number
  #parses = 0

  constructor(maxTrees = Infinity) {
    this.#maxTrees = maxTrees
  }

  /** Wheres given to PostgreSQL's parser so far (the others reused a tree). */
  get parses(): number {
    return this.#parses
  }

  /** The definition's where compiled (see `compile`), if it has one. */
  compileOf(definition: ShapeDefinition, table: TableInfo, tables?: SubqueryTables): CompiledWhere | undefined {
    return definition.where === undefined ? undefined : this.compile(definition.where, table, tables)
  }

  /** As `compileWhere(canonical, noParams, table, tables)`. Throws InvalidRequestError. */
  compile(canonical: string, table: TableInfo, tables?: SubqueryTables): CompiledWhere {
    const literals: Literal[] = []
    const template = canonical.replace(TOKENS, (token: string, quoted: string | undefined) => {
      if (token.startsWith('"')) return token
      if (quoted !== undefined) {
        literals.push({ literal: 'string', text: quoted.replaceAll("''", "'") })
        return STRING_MARK
      }
      // The parser's rule: digits alone are an integer (int4, or int8/numeric when too large).
      literals.push({ literal: /^-?\d+$/.test(token) ? 'integer' : 'decimal', text: token })
      return NUMBER_MARK
    })
    const shared = this.#trees.get(template)
    const tree = shared && withLiterals(shared, literals)
    if (tree && canonicalWhere(tree) === canonical) return compileParsedWhere(tree, canonical, table, tables)
    this.#parses++
    const parsed = parseWhere(canonical, noParams)
    // A where stored before today's canonical spelling is compiled from its new spelling, as a request's is.
    if (canonicalWhere(parsed) !== canonical) return compileWhere(canonical, noParams, table, tables)
    if (!shared) {
      if (this.#trees.size >= this.#maxTrees) this.#trees.delete(this.#trees.keys().next().value!)
      this.#trees.set(template, parsed)
    }
    return compileParsedWhere(parsed, canonical, table, tables)
  }
}

/** `tree` with its literals replaced, in text order; undefined when the counts differ. */
function withLiterals(tree: WhereNode, literals: readonly Literal[]): WhereNode | undefined {
  let next = 0
  const rebuild = (value: unknown): unknown => {
    if (Array.isArray(value)) return value.map(rebuild)
    if (value === null || typeof value !== 'object' || !('kind' in value)) return value
    const node = value as WhereNode
    if (node.kind === 'literal' && node.literal !== 'boolean' && node.literal !== 'null') {
      const literal = literals[next++]
      return literal && { kind: 'literal', ...literal, at: node.at }
    }
    const copy: Record<string, unknown> = {}
    for (const [key, child] of Object.entries(node)) copy[key] = rebuild(child)
    return copy
  }
  const rebuilt = rebuild(tree) as WhereNode
  return next === literals.length ? rebuilt : undefined
}
