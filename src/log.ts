/** Structured JSON logs (pino). One root logger; modules take children with a `component`. */
import { pino, type Logger } from 'pino'
import type { LogLevel } from './config.js'

export type { Logger }

export function createLogger(level: LogLevel): Logger {
  return pino({ level, base: { service: 'sluice' } })
}
