/** Structured JSON logs (pino). One root logger; modules take children with a `component`. */
import { pino, type Logger } from 'pino'
import type { LogLevel } from './config.js'

export type { Logger }

export function createLogger(level: LogLevel): Logger {
  return pino({ level, base: { service: 'sluice' } })
}

/**
 * Writes out at once what the logger still buffers. Its stdout stream is asynchronous and flushed
 * by an exit hook; a process that exits without its exit hooks (server.ts, on a storage failure)
 * would otherwise lose its last lines, the fatal one among them.
 */
export function flushLogSync(log: Logger): void {
  const stream = (log as unknown as Record<symbol, { flushSync?: () => void } | undefined>)[pino.symbols.streamSym]
  try {
    stream?.flushSync?.()
  } catch {
    // Nothing more can be done for a log that cannot be written; the exit code still tells.
  }
}
