/**
 * Imports follow the layers of docs/ARCHITECTURE.md (Modules): data flows protocol → pg →
 * replication → shapes → storage → http, and no folder reaches back up or across. Read from the
 * source text, so a new import that breaks a rule fails here rather than in a review.
 */
import { readdirSync, readFileSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import { describe, expect, it } from 'vitest'

const SRC = resolve(import.meta.dirname, '../../src')

/** Modules every layer but protocol/ may use: errors as values, and the logger. */
const CROSS_CUTTING = ['errors.ts', 'log.ts']

/**
 * What each folder may import besides itself (a folder, or one file). Folders not listed
 * (the composition root and its neighbours) may import anything.
 */
const MAY_IMPORT: Readonly<Record<string, readonly string[]>> = {
  protocol: [],
  pg: ['protocol', ...CROSS_CUTTING],
  replication: ['pg', 'protocol', ...CROSS_CUTTING],
  // Storage keeps shapes by definition and hands out their handles.
  storage: ['pg', 'protocol', 'shapes/shape-definition.ts', 'shapes/shape-handle.ts', ...CROSS_CUTTING],
  shapes: ['pg', 'protocol', 'replication', 'storage', ...CROSS_CUTTING],
  // Not storage/: routes read the log through http/shape-log.ts.
  http: ['pg', 'protocol', 'shapes', 'metrics.ts', 'demo-routes.ts', ...CROSS_CUTTING],
  // HTTP worker processes: a worker composes http/ over read-only storage; the owner starts the
  // rest through server.ts, never replication/ or the router directly.
  cluster: ['http', 'pg', 'protocol', 'shapes', 'storage', 'server.ts', 'config.ts', 'lifecycle.ts', 'http-listener.ts', 'metrics.ts', ...CROSS_CUTTING],
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name)
    if (entry.isDirectory()) return sourceFiles(path)
    return entry.name.endsWith('.ts') ? [path] : []
  })
}

/** Every relative import of a file, as a path under src/ (`shapes/shape-handle.ts`). */
function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8')
  const specifiers = [...text.matchAll(/(?:from|import)\s*\(?\s*'(\.[^']+)'/g)].map((match) => match[1]!)
  return specifiers.map((specifier) => relative(SRC, resolve(dirname(file), specifier)).replace(/\.js$/, '.ts'))
}

/** The import rule a file under src/ breaks, for each import that breaks one. */
function violations(files: readonly { readonly path: string; readonly imports: readonly string[] }[]): string[] {
  const found: string[] = []
  for (const { path, imports } of files) {
    const layer = path.split('/')[0]!
    const allowed = MAY_IMPORT[layer]
    if (!allowed || !path.includes('/')) continue
    for (const target of imports) {
      if (target.split('/')[0] === layer) continue
      if (allowed.some((rule) => target === rule || target.startsWith(`${rule}/`))) continue
      found.push(`${path} imports ${target}`)
    }
  }
  return found
}

describe('layers', () => {
  it('every import in src/ follows docs/ARCHITECTURE.md', () => {
    const files = sourceFiles(SRC).map((file) => ({ path: relative(SRC, file), imports: importsOf(file) }))
    expect(files.length).toBeGreaterThan(50)
    expect(violations(files)).toEqual([])
  })

  it('names what reaches across: pg/ into shapes/, http/ into storage/, protocol/ into anything', () => {
    expect(
      violations([
        { path: 'pg/publication.ts', imports: ['shapes/shape-definition.ts', 'pg/sql.ts', 'errors.ts'] },
        { path: 'http/shape-route.ts', imports: ['storage/shape-log-store.ts', 'shapes/shape-manager.ts'] },
        { path: 'protocol/offset.ts', imports: ['errors.ts'] },
        { path: 'storage/shape-log-store.ts', imports: ['shapes/shape-handle.ts', 'shapes/shape-router.ts'] },
        { path: 'server.ts', imports: ['storage/shape-log-store.ts'] },
      ]),
    ).toEqual([
      'pg/publication.ts imports shapes/shape-definition.ts',
      'http/shape-route.ts imports storage/shape-log-store.ts',
      'protocol/offset.ts imports errors.ts',
      'storage/shape-log-store.ts imports shapes/shape-router.ts',
    ])
  })
})
