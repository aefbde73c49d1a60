/**
 * The `subquery` scenario's clients, in a process of their own so that their HTTP and PostgreSQL
 * work does not share Sluice's event loop (in one process, the 200 followers' responses and the
 * writer's queries took their turns on it between Sluice's): one long-poll loop per followed
 * user, each on its own connection as a browser would have, and a writer that commits
 * membership inserts at a fixed rate. Each move-in is timed from the acknowledgement of the commit
 * that causes it to the response that carries it.
 *
 * Run as a child process (`fork(SUBQUERY_CLIENTS)`), given a `SubqueryClientsRun` over IPC; it
 * answers with a `SubqueryClientsResult` and exits.
 */
import { fileURLToPath } from 'node:url'
import pg from 'pg'
import { chunkUrl, connectionAgent, getChunk } from './chunk-follower.js'
import { sleep } from './timing.js'

export const SUBQUERY_CLIENTS = fileURLToPath(import.meta.url)

export interface SubqueryClientsRun {
  readonly shapeUrl: string
  readonly databaseUrl: string
  /** The where, with `$1` the user's id (`u<n>`). */
  readonly where: string
  readonly users: number
  /** Where each followed user's client starts: users 0 … positions.length − 1. */
  readonly positions: readonly { readonly handle: string; readonly offset: string }[]
  readonly rate: number
  readonly seconds: number
}

export type SubqueryClientsResult = { readonly latenciesMs: readonly number[] } | { readonly error: string }

interface Pending {
  committedAt: number
  readonly resolve: (ms: number) => void
}

async function run(request: SubqueryClientsRun): Promise<readonly number[]> {
  const { users, rate, seconds, positions } = request
  const followed = positions.length
  const params = (user: number) => ({ table: 'tasks', where: request.where, 'params[1]': `u${user}` })
  const waiting = new Map<number, Pending[]>()
  let stopping = false
  const follow = async (user: number) => {
    let { handle, offset } = positions[user]!
    // One connection per user: one shared by all would queue every long-poll behind the one parked.
    const agent = connectionAgent()
    while (!stopping) {
      const response = await getChunk(chunkUrl(request.shapeUrl, { ...params(user), live: 'true' }, { offset, handle }), agent)
      if (response.status !== 200) throw new Error(`follower of u${user}: ${response.status}`)
      handle = response.headers['electric-handle'] ?? handle
      offset = response.headers['electric-offset'] ?? offset
      const arrived = response.body.toString().split('"move-in"').length - 1
      const pending = waiting.get(user) ?? []
      for (const entry of pending.splice(0, arrived)) entry.resolve(Math.max(0, performance.now() - entry.committedAt))
    }
  }
  const followers = Array.from({ length: followed }, (_, user) => follow(user))
  const writer = new pg.Client({ connectionString: request.databaseUrl })
  await writer.connect()
  const latencies: Promise<number>[] = []
  const total = Math.round(rate * seconds)
  const begin = performance.now()
  for (let n = 0; n < total; n++) {
    const due = begin + (n * 1000) / rate
    if (due > performance.now()) await sleep(due - performance.now())
    const user = n % followed
    // Another user's project, a new one for this user each round: its tasks move in.
    const project = (user + Math.floor(users / 2) + Math.floor(n / followed)) % users
    let resolve!: (ms: number) => void
    latencies.push(new Promise<number>((r) => (resolve = r)))
    // Queued before the commit is acknowledged (its move-in cannot arrive earlier), timed from the acknowledgement.
    const entry: Pending = { committedAt: Number.POSITIVE_INFINITY, resolve }
    const queue = waiting.get(user) ?? []
    waiting.set(user, queue)
    queue.push(entry)
    await writer.query(`INSERT INTO memberships (project_id, user_id) VALUES ($1, $2)`, [project, `u${user}`])
    entry.committedAt = performance.now()
  }
  const timeout = sleep(60_000).then(() => Promise.reject(new Error('a move-in did not reach its follower within 60 s')))
  const measured = await Promise.race([Promise.all(latencies), timeout])
  stopping = true
  await writer.end()
  // The followers' last long-polls end at their timeout, or when this process exits.
  void Promise.allSettled(followers)
  return measured
}

process.once('message', (request: SubqueryClientsRun) => {
  run(request).then(
    (latenciesMs) => process.send!({ latenciesMs } satisfies SubqueryClientsResult, () => process.exit(0)),
    (error: unknown) => process.send!({ error: (error as Error).message } satisfies SubqueryClientsResult, () => process.exit(1)),
  )
})
