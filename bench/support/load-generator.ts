/**
 * HTTP load from a separate process, so that the load generator does not share the event loop
 * of the server under test: `wrk` when installed, otherwise the `autocannon` CLI.
 */
import { execFile, execFileSync } from 'node:child_process'
import { createRequire } from 'node:module'
import { promisify } from 'node:util'

const run = promisify(execFile)

export interface LoadResult {
  readonly tool: string
  readonly requestsPerSecond: number
  readonly errors: number
}

export function loadTool(): 'wrk' | 'autocannon' {
  try {
    execFileSync('sh', ['-c', 'command -v wrk'], { stdio: 'ignore' })
    return 'wrk'
  } catch {
    return 'autocannon'
  }
}

export async function generateLoad(url: string, connections: number, seconds: number): Promise<LoadResult> {
  return loadTool() === 'wrk' ? wrk(url, connections, seconds) : autocannon(url, connections, seconds)
}

async function autocannon(url: string, connections: number, seconds: number): Promise<LoadResult> {
  const cli = createRequire(import.meta.url).resolve('autocannon/autocannon.js')
  const { stdout } = await run(process.execPath, [cli, '-c', String(connections), '-d', String(seconds), '-n', '-j', url], {
    maxBuffer: 64 * 1024 * 1024,
  })
  const report = JSON.parse(stdout) as { requests: { average: number }; errors: number; non2xx: number; timeouts: number }
  return { tool: 'autocannon', requestsPerSecond: report.requests.average, errors: report.errors + report.non2xx + report.timeouts }
}

async function wrk(url: string, connections: number, seconds: number): Promise<LoadResult> {
  const { stdout } = await run('wrk', ['-t', '1', '-c', String(connections), '-d', `${seconds}s`, url], { maxBuffer: 16 * 1024 * 1024 })
  const rate = /Requests\/sec:\s+([0-9.]+)/.exec(stdout)
  if (!rate) throw new Error(`could not read wrk's output: ${stdout}`)
  const non2xx = /Non-2xx or 3xx responses:\s+([0-9]+)/.exec(stdout)
  const socketErrors = /Socket errors: connect ([0-9]+), read ([0-9]+), write ([0-9]+), timeout ([0-9]+)/.exec(stdout)
  const errors = Number(non2xx?.[1] ?? 0) + (socketErrors ? socketErrors.slice(1).reduce((n, v) => n + Number(v), 0) : 0)
  return { tool: 'wrk', requestsPerSecond: Number(rate[1]), errors }
}
