/**
 * `npx tsx bench/profile-top.ts <file> [per]`: the top sources in a V8 profile of a bench's Sluice child,
 * divided by `per` (say, the shapes created): self time by function of a `.cpuprofile`
 * (`--cpu-prof`), allocated bytes by function of a `.heapprofile` (`support/allocation-profile.ts`).
 */
import { readFileSync } from 'node:fs'

interface CallFrame {
  readonly functionName: string
  readonly url: string
  readonly lineNumber: number
}
interface CpuProfile {
  readonly nodes: readonly { readonly id: number; readonly callFrame: CallFrame }[]
  readonly samples: readonly number[]
  readonly timeDeltas: readonly number[]
}
interface HeapNode {
  readonly callFrame: CallFrame
  readonly selfSize: number
  readonly children: readonly HeapNode[]
}

const TOP = 30

function siteOf({ functionName, url, lineNumber }: CallFrame): string {
  const file = url.replace(/^file:\/\/.*?\/(src|bench|node_modules)\//, '$1/')
  return `${functionName || '(anonymous)'} ${file}${file ? `:${lineNumber + 1}` : ''}`
}

function selfTimeUs(profile: CpuProfile): Map<string, number> {
  const site = new Map(profile.nodes.map((node) => [node.id, siteOf(node.callFrame)]))
  const totals = new Map<string, number>()
  profile.samples.forEach((id, i) => {
    const key = site.get(id)!
    totals.set(key, (totals.get(key) ?? 0) + (profile.timeDeltas[i] ?? 0))
  })
  return totals
}

function allocatedBytes(head: HeapNode): Map<string, number> {
  const totals = new Map<string, number>()
  const visit = (node: HeapNode) => {
    if (node.selfSize > 0) totals.set(siteOf(node.callFrame), (totals.get(siteOf(node.callFrame)) ?? 0) + node.selfSize)
    node.children.forEach(visit)
  }
  visit(head)
  return totals
}

const [file, perText = '1'] = process.argv.slice(2).filter((arg) => arg !== '--')
if (!file) throw new Error('usage: npx tsx bench/profile-top.ts <file.cpuprofile|file.heapprofile> [per]')
const per = Number(perText)
const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile | { head: HeapNode }
const cpu = 'nodes' in profile
const totals = cpu ? selfTimeUs(profile) : allocatedBytes(profile.head)
const all = [...totals.values()].reduce((sum, value) => sum + value, 0)
const unit = cpu ? 'µs' : 'bytes'
const lines = [`${cpu ? 'self time' : 'allocated'}: ${(all / per).toFixed(0)} ${unit} per ${per === 1 ? 'profile' : 'unit'}`]
for (const [key, value] of [...totals].sort((a, b) => b[1] - a[1]).slice(0, TOP)) {
  lines.push(`${((100 * value) / all).toFixed(1).padStart(5)}%  ${(value / per).toFixed(1).padStart(8)} ${unit}  ${key}`)
}
console.log(lines.join('\n'))
