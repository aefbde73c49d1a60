/**
 * Drives the `waiters` processes from a parent (the bench, or a test): the server child
 * (`waiter-server.ts`) and load-generator children (`waiter-clients.ts`), over IPC.
 */
import { fork, type ChildProcess } from 'node:child_process'
import { formatCount, waitUntil } from './timing.js'
import { WAITER_CLIENTS, type OpenRequest, type WaiterClientsMessage, type WaiterClientsRequest } from './waiter-clients.js'
import { WAITER_SERVER, type WaiterServerMessage, type WaiterServerRequest } from './waiter-server.js'

export type Collected = Extract<WaiterClientsMessage, { type: 'collected' }>

/** Starts the server child (`raw`, or Sluice on `databaseUrl`) and resolves with it and its port. */
export async function startWaiterServer(databaseUrl?: string): Promise<{ server: ChildProcess; port: number }> {
  const server = fork(WAITER_SERVER, databaseUrl ? ['sluice', databaseUrl] : ['raw'], {
    // The young generation at its full size from the start: its growth under the first burst of
    // requests (up to 2 × 16 MB) is the runtime's, once, not a cost of each waiting request.
    execArgv: ['--import', 'tsx', '--expose-gc', '--min-semi-space-size=16'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  })
  const { port } = await reply<{ port: number }>(server, 'ready')
  return { server, port }
}

export async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = new Promise((resolve) => child.once('exit', resolve))
  child.kill()
  await exited
}

export function startGenerator(): ChildProcess {
  return fork(WAITER_CLIENTS, [], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
}

/** Opens connections on a generator; resolves with its requests sent again after a 408 so far. */
export async function openOn(generator: ChildProcess, request: Omit<OpenRequest, 'type'>): Promise<number> {
  const opened = reply<{ retries: number }>(generator, 'opened')
  generator.send({ type: 'open', ...request } satisfies WaiterClientsRequest)
  return (await opened).retries
}

export async function collect(generator: ChildProcess, marker: string, timeoutMs: number): Promise<Collected> {
  const collected = reply<Collected>(generator, 'collected')
  generator.send({ type: 'collect', marker, timeoutMs } satisfies WaiterClientsRequest)
  return collected
}

export async function stopGenerator(generator: ChildProcess): Promise<void> {
  if (generator.exitCode !== null || generator.signalCode !== null) return
  const exited = new Promise((resolve) => generator.once('exit', resolve))
  generator.send({ type: 'close' } satisfies WaiterClientsRequest)
  await exited
}

export async function waitForCount(server: ChildProcess, waiting: number): Promise<void> {
  await waitUntil(
    `${formatCount(waiting)} waiting requests`,
    async () => {
      const answer = reply<{ waiting: number }>(server, 'count')
      server.send({ type: 'count' } satisfies WaiterServerRequest)
      return (await answer).waiting === waiting
    },
    60_000,
    100,
  )
}

export async function memory(server: ChildProcess): Promise<{ rss: number; heapUsed: number }> {
  const answer = reply<{ rss: number; heapUsed: number }>(server, 'memory')
  server.send({ type: 'memory' } satisfies WaiterServerRequest)
  return answer
}

/** The next message of `type` from a child; rejects if the child exits first. */
export function reply<T>(child: ChildProcess, type: (WaiterServerMessage | WaiterClientsMessage)['type']): Promise<T> {
  return new Promise((resolve, reject) => {
    const onMessage = (message: { type: string }) => {
      if (message.type !== type) return
      cleanup()
      resolve(message as T)
    }
    const onExit = (code: number | null) => {
      cleanup()
      reject(new Error(`bench child exited (${code}) before '${type}'`))
    }
    const cleanup = () => {
      child.off('message', onMessage)
      child.off('exit', onExit)
    }
    child.on('message', onMessage)
    child.once('exit', onExit)
  })
}

/** Where the waiters wait: the head of shape `items` (any path will do for the raw server). */
export async function pathsFor(port: number, kind: 'raw' | 'sluice'): Promise<{ longPollPath: string; ssePath: string }> {
  // The raw server holds any request; Sluice's are at the head of a real shape.
  const { handle, offset } = kind === 'raw' ? { handle: 'raw', offset: '0_0' } : await headOf(`http://127.0.0.1:${port}/v1/shape?table=items`)
  const longPollPath = `/v1/shape?table=items&handle=${handle}&offset=${offset}&live=true&cursor=0`
  return { longPollPath, ssePath: `${longPollPath}&live_sse=true` }
}

async function headOf(shapeUrl: string): Promise<{ handle: string; offset: string }> {
  let handle = ''
  let offset = '-1'
  for (;;) {
    const response = await fetch(`${shapeUrl}&offset=${offset}${handle ? `&handle=${handle}` : ''}`)
    await response.arrayBuffer()
    handle = response.headers.get('electric-handle')!
    offset = response.headers.get('electric-offset')!
    if (response.headers.has('electric-up-to-date')) return { handle, offset }
  }
}

