/**
 * On a mismatch, the follower's shape log read again from its start, by its handle: the changes
 * the log holds for the differing rows, marked when past the follower's offset. A change the log
 * holds before that offset and the client lacks was lost in delivery; one the log lacks was lost
 * before it (routing, storage, replication).
 */
import { Follower } from '../test/support/follower.js'

const MAX_REQUESTS = 1_000
const CHANGES_PER_ROW = 12
const WORKER_HEADER = 'x-sluice-worker'

export async function rereadLog(url: string, params: Record<string, string>, handle: string, upTo: string, ids: readonly string[]): Promise<string> {
  const reader = new Follower(() => url, params, { partial: true })
  reader.handle = handle
  const limit = offsetOf(upTo)
  const changes = new Map<string, string[]>(ids.map((id) => [id, []]))
  const workers = new Set<string>()
  reader.onResponse = (_request, response, messages) => {
    workers.add(response.headers.get(WORKER_HEADER) ?? 'owner')
    for (const message of messages) {
      if (message.headers['control'] !== undefined) continue
      const id = ids.find((candidate) => message.key!.endsWith(`/"${candidate}"`))
      if (id === undefined) continue
      const lsn = message.headers['lsn'] === undefined ? undefined : { tx: BigInt(String(message.headers['lsn'])), op: Number(message.headers['op_position']) }
      const past = lsn !== undefined && (lsn.tx > limit.tx || (lsn.tx === limit.tx && lsn.op > limit.op))
      const where = lsn === undefined ? 'snapshot' : `${lsn.tx}/${lsn.op} txid ${JSON.stringify(message.headers['txids'])}`
      changes.get(id)!.push(`${String(message.headers['operation'])} ${where} ${JSON.stringify(message.value ?? null)}${past ? ' (past the client’s offset)' : ''}`)
    }
  }
  let requests = 0
  for (; requests < MAX_REQUESTS && !reader.upToDate; requests++) {
    const status = await reader.step()
    if (status === 409) return `the handle is gone (409) after ${requests} request(s)`
    if (status !== 200) return `status ${status} after ${requests} request(s)`
    if (reader.handle !== handle) return `the handle is gone (answered as ${reader.handle})`
  }
  const rows = [...changes].map(([id, list]) => `id ${id}: ${list.length === 0 ? 'no change' : list.slice(-CHANGES_PER_ROW).join('; ')}${list.length > CHANGES_PER_ROW ? ` (last ${CHANGES_PER_ROW} of ${list.length})` : ''}`)
  return `${requests} request(s) to ${reader.offset}${reader.upToDate ? '' : ' (not up to date)'} from worker(s) ${[...workers].join(', ')}: ${rows.join(' || ')}`
}

function offsetOf(text: string): { tx: bigint; op: number } {
  const [tx, op] = text.split('_')
  return { tx: BigInt(tx ?? '0'), op: op === 'inf' ? Number.MAX_SAFE_INTEGER : Number(op ?? '0') }
}
