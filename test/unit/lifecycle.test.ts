/**
 * The service stack `server.ts` composes Sluice on: services stop in the reverse of the order they
 * started, a service whose start failed is stopped with the rest, and one that fails to stop does
 * not keep the others running.
 */
import { describe, expect, it } from 'vitest'
import { ServiceStack, type Service } from '../../src/lifecycle.js'
import { createLogger } from '../../src/log.js'

function recorder(events: string[]) {
  return (name: string, fail: { start?: boolean; stop?: boolean } = {}): Service => ({
    name,
    start: async () => {
      events.push(`start ${name}`)
      if (fail.start) throw new Error(`${name} cannot start`)
    },
    stop: async () => {
      events.push(`stop ${name}`)
      if (fail.stop) throw new Error(`${name} cannot stop`)
    },
  })
}

describe('ServiceStack', () => {
  it('stops services in the reverse of their start order, once', async () => {
    const events: string[] = []
    const service = recorder(events)
    const stack = new ServiceStack(createLogger('silent'))
    for (const name of ['database', 'storage', 'shapes', 'replication', 'http']) await stack.start(service(name))
    await stack.stop()
    await stack.stop()
    expect(events).toEqual([
      'start database',
      'start storage',
      'start shapes',
      'start replication',
      'start http',
      'stop http',
      'stop replication',
      'stop shapes',
      'stop storage',
      'stop database',
    ])
  })

  it('stops a service whose start failed, and those before it', async () => {
    const events: string[] = []
    const service = recorder(events)
    const stack = new ServiceStack(createLogger('silent'))
    await stack.start(service('database'))
    await expect(stack.start(service('replication', { start: true }))).rejects.toThrow('replication cannot start')
    await stack.stop()
    expect(events).toEqual(['start database', 'start replication', 'stop replication', 'stop database'])
  })

  it('stops every service when one fails to stop, then throws the first failure', async () => {
    const events: string[] = []
    const service = recorder(events)
    const stack = new ServiceStack(createLogger('silent'))
    await stack.start(service('database'))
    await stack.start(service('storage', { stop: true }))
    await stack.start(service('http', { stop: true }))
    await expect(stack.stop()).rejects.toThrow('http cannot stop')
    expect(events.slice(3)).toEqual(['stop http', 'stop storage', 'stop database'])
  })
})
