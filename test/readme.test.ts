/**
 * The README documents every configuration option, in a table row with its real default, and the
 * commands it promises. A new option in `CONFIG_OPTIONS` fails this test until it is documented.
 */
import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { CONFIG_OPTIONS } from '../src/config.js'

const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8')
const tableRows = readme.split('\n').filter((line) => line.trimStart().startsWith('|'))

/** The cells of the row whose first cell is `` `name` ``, or undefined. */
function rowOf(name: string): string[] | undefined {
  for (const row of tableRows) {
    const cells = row.trim().replace(/^\||\|$/g, '').split('|').map((cell) => cell.trim())
    if (cells[0] === `\`${name}\``) return cells
  }
  return undefined
}

describe('README', () => {
  it.each(CONFIG_OPTIONS.map((o) => [o.env, o.default] as const))('documents %s in the configuration table', (env, fallback) => {
    const cells = rowOf(env)
    expect(cells, `README.md has no table row starting with \`${env}\``).toBeDefined()
    expect(cells![1]).toBe(fallback === undefined ? 'unset' : `\`${fallback}\``)
    expect(cells![2]?.length ?? 0).toBeGreaterThan(0)
  })

  it('gives the quick start and test commands', () => {
    expect(readme).toContain('npm install && npm start')
    expect(readme).toContain('npm test')
  })
})
