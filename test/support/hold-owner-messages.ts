/**
 * A test seam loaded into Sluice's processes with `--import` (`ChildSluice`'s `preload`), for
 * tests that need one HTTP worker behind another (`test/workers-feed-behind.pg.test.ts`). In an
 * HTTP worker, SIGUSR2 holds every message from the owner — its feeds and replies, in order, as
 * a slow IPC channel would — while the worker goes on answering HTTP; the next SIGUSR2 hands them
 * over in one step, in order. Each switch is announced on stderr, so the test waits for that and
 * not for the signal. The owner process loads it too and ignores it. Nothing in `src/` knows of it.
 */
import cluster from 'node:cluster'

/** The line a worker writes once it holds (`true`) or has handed over (`false`) the owner's messages. */
export function holdAnnouncement(pid: number, holding: boolean): string {
  return `hold-owner-messages: worker ${pid} ${holding ? 'holds' : 'released'} the owner's messages`
}

if (cluster.isWorker) {
  const emit = process.emit.bind(process) as (event: string, ...args: unknown[]) => boolean
  const held: unknown[][] = []
  let holding = false
  ;(process as { emit: (event: string, ...args: unknown[]) => boolean }).emit = (event, ...args) => {
    if (event !== 'message' || !holding) return emit(event, ...args)
    held.push(args)
    return true
  }
  process.on('SIGUSR2', () => {
    holding = !holding
    if (!holding) for (const args of held.splice(0)) emit('message', ...args)
    process.stderr.write(`${holdAnnouncement(process.pid, holding)}\n`)
  })
}
