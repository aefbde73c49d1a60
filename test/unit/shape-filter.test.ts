import { describe, expect, it } from 'vitest'
import type { ShapeDefinition } from '../../src/shapes/shape-definition.js'
import { bindShape } from '../../src/shapes/shape-filter.js'
import { canonicalizeWhere, compileWhere } from '../../src/shapes/where/compile-where.js'
import { ITEMS_TABLE } from '../support/items-table.js'

const noParams = () => undefined
const definitionOf = (where: string): ShapeDefinition => ({ table: ITEMS_TABLE.table, replica: 'default', log: 'full', where: canonicalizeWhere(where) })

describe('bindShape', () => {
  it('takes the where the request compiled for the table instead of parsing it again', () => {
    // A new shape's where was parsed four times on its way in; each parse is a call into libpg_query.
    const definition = definitionOf('id = 7')
    const compiled = compileWhere(definition.where!, noParams, ITEMS_TABLE)
    expect(bindShape(definition, ITEMS_TABLE, undefined, compiled).where).toBe(compiled)
  })

  it('compiles its own where when the one given is of another clause', () => {
    const definition = definitionOf('id = 7')
    const other = compileWhere(canonicalizeWhere('id = 8'), noParams, ITEMS_TABLE)
    const bound = bindShape(definition, ITEMS_TABLE, undefined, other).where!
    expect(bound).not.toBe(other)
    expect(bound.canonical).toBe(definition.where)
    expect(bound.matches({ id: '7' })).toBe(true)
    expect(bound.matches({ id: '8' })).toBe(false)
  })
})
