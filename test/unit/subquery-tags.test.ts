import { createHash } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { slotHash } from '../../src/shapes/subquery/tags.js'

const md5 = (text: string) => createHash('md5').update(text).digest('hex')

describe('slotHash', () => {
  it("is Electric's md5 of the handle and the slot's values, whatever was hashed before it", () => {
    const slots: [string, (string | null)[], string][] = [
      ['h1', ['5'], 'h1v:5'],
      ['h1', ['5'], 'h1v:5'],
      ['h2', ['5'], 'h2v:5'],
      ['h1', [null], 'h1NULL'],
      ['h1', ['5', null], 'h10:v:51:NULL'],
      ['h1', ['5'], 'h1v:5'],
    ]
    for (const [handle, parts, text] of slots) expect(slotHash(handle, parts)).toBe(md5(text))
  })
})
