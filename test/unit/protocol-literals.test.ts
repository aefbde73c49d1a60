/**
 * Every header, query parameter and control value lives once, in `src/protocol/constants.ts`
 * (STYLE: Protocol in one place). This scan fails when a file under `src/` spells one of those
 * values as a raw string literal ('…', "…" or a template literal without substitutions) —
 * real literals only, found with the TypeScript parser, so comments and import paths do not count.
 */
import { readdirSync, readFileSync } from 'node:fs'
import { join, relative, sep } from 'node:path'
import { fileURLToPath } from 'node:url'
import ts from 'typescript'
import { describe, expect, it } from 'vitest'
import { CONTROL, EVENTS, HEADERS, PARAMS, SUBQUERY_HEADERS } from '../../src/protocol/constants.js'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))
const SRC = join(ROOT, 'src')
const CONSTANTS_FILE = join(SRC, 'protocol', 'constants.ts')

const FORBIDDEN = new Set<string>([...Object.values(HEADERS), ...Object.values(PARAMS), ...Object.values(CONTROL), ...Object.values(EVENTS), ...Object.values(SUBQUERY_HEADERS)])

interface Violation {
  readonly file: string
  readonly line: number
  readonly literal: string
}

function sourceFiles(dir: string): string[] {
  const files: string[] = []
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name)
    if (entry.isDirectory()) files.push(...sourceFiles(path))
    else if (/\.(c|m)?tsx?$/.test(entry.name) || /\.(c|m)?js$/.test(entry.name)) files.push(path)
  }
  return files
}

/** Raw protocol literals in one file's text. */
function findProtocolLiterals(fileName: string, text: string): Violation[] {
  const source = ts.createSourceFile(fileName, text, ts.ScriptTarget.Latest, true)
  const found: Violation[] = []
  const visit = (node: ts.Node): void => {
    if ((ts.isStringLiteral(node) || ts.isNoSubstitutionTemplateLiteral(node)) && FORBIDDEN.has(node.text)) {
      // Module specifiers are paths, not protocol text.
      const parent = node.parent
      const isModulePath =
        (ts.isImportDeclaration(parent) || ts.isExportDeclaration(parent)) && parent.moduleSpecifier === node
      if (!isModulePath) {
        const { line } = source.getLineAndCharacterOfPosition(node.getStart(source))
        found.push({ file: fileName, line: line + 1, literal: node.getText(source) })
      }
    }
    ts.forEachChild(node, visit)
  }
  visit(source)
  return found
}

describe('protocol literals', () => {
  it('knows the values it looks for', () => {
    expect(FORBIDDEN.has('electric-handle')).toBe(true)
    expect(FORBIDDEN.has('live_sse')).toBe(true)
    expect(FORBIDDEN.has('up-to-date')).toBe(true)
    expect(FORBIDDEN.has('must-refetch')).toBe(true)
  })

  it('catches single, double and template quotes, not comments or longer strings', () => {
    const text = [
      `const a = 'electric-offset'`,
      `const b = "up-to-date"`,
      'const c = `live_sse`',
      `// 'electric-cursor' in a comment is fine`,
      `/** "snapshot-end" in JSDoc is fine */`,
      'const d = `electric-handle: ${a}`',
      `const e = 'electric-offsets'`,
      `const f = { 'retry-after': 1 }`,
    ].join('\n')
    expect(findProtocolLiterals('sample.ts', text)).toEqual([
      { file: 'sample.ts', line: 1, literal: `'electric-offset'` },
      { file: 'sample.ts', line: 2, literal: `"up-to-date"` },
      { file: 'sample.ts', line: 3, literal: '`live_sse`' },
      { file: 'sample.ts', line: 8, literal: `'retry-after'` },
    ])
  })

  /**
   * Violations that existed when this scan was written, as `file literal` (no line numbers: src/
   * is being edited). Fix them in src/ by using the constant and delete the entry here; the list
   * must end empty. Any new violation, or a fixed one still listed, fails the test.
   */
  // Literals that equal a protocol value by coincidence: the `secret` configuration key.
  const KNOWN_VIOLATIONS: readonly string[] = [`src/config.ts 'secret'`]

  it('finds none in src/ outside protocol/constants.ts (beyond known coincidences)', () => {
    const files = sourceFiles(SRC).filter((file) => file !== CONSTANTS_FILE)
    expect(files.length).toBeGreaterThan(10)
    const violations = files.flatMap((file) =>
      findProtocolLiterals(relative(ROOT, file).split(sep).join('/'), readFileSync(file, 'utf8')),
    )
    const where = violations.map((v) => `${v.file}:${v.line} ${v.literal}`).join('\n')
    expect(violations.map((v) => `${v.file} ${v.literal}`).sort(), `raw protocol literals in src/:\n${where}`).toEqual(
      [...KNOWN_VIOLATIONS].sort(),
    )
  })
})
