/**
 * The router's parts are `shapes/`'s own (docs/ARCHITECTURE.md: Inside `shapes/`, I20): outside
 * `shapes/`, only `server.ts` (which assembles the router) may import them; http/ reads shapes and
 * asks `shape-lifecycle.ts`.
 */
import { readdirSync, readFileSync } from 'node:fs'
import { join, relative, sep } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'

const SRC = fileURLToPath(new URL('../../src', import.meta.url))
const INTERNAL = ['snapshot-merge', 'shape-entries', 'commit-pipeline', 'unconfirmed-commits']
const ROUTER = 'shape-router'

function files(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name)
    return entry.isDirectory() ? files(path) : entry.name.endsWith('.ts') ? [path] : []
  })
}

/** `file imports module` for every import of one of `modules` from a file outside src/shapes/. */
function importsOf(modules: readonly string[], allowed: (file: string) => boolean): string[] {
  const found: string[] = []
  for (const path of files(SRC)) {
    const file = relative(SRC, path).split(sep).join('/')
    if (file.startsWith('shapes/') || allowed(file)) continue
    for (const [, specifier] of readFileSync(path, 'utf8').matchAll(/\bfrom\s+'([^']+)'/g)) {
      const module = modules.find((name) => specifier!.endsWith(`/shapes/${name}.js`))
      if (module) found.push(`${file} imports ${module}`)
    }
  }
  return found
}

describe('shapes/ imports', () => {
  it('keeps the merge, the entries and the commit pipeline inside shapes/', () => {
    expect(importsOf(INTERNAL, () => false)).toEqual([])
  })

  it('lets only server.ts reach the router', () => {
    expect(importsOf([ROUTER], (file) => file === 'server.ts')).toEqual([])
  })
})
