/**
 * The last few things a client received, as text (runs of changes counted, controls named), so a
 * violation says what led to it.
 */
const KEEP = 16

export class Trace {
  readonly #lines: string[] = []
  #changes = 0

  /** One message; `where` names the handle and offset it arrived at. */
  message(message: { headers: Record<string, unknown> }, where: string): void {
    const control = message.headers['control']
    if (control === undefined) {
      this.#changes++
      return
    }
    const snapshot = control === 'snapshot-end' ? ` ${String(message.headers['xmin'])}:${String(message.headers['xmax'])}` : ''
    this.#push(`${this.#changes > 0 ? `${this.#changes} changes, ` : ''}${String(control)}${snapshot} @ ${where}`)
    this.#changes = 0
  }

  note(text: string): void {
    this.#push(text)
  }

  toString(): string {
    return [...this.#lines, ...(this.#changes > 0 ? [`${this.#changes} changes`] : [])].join(' | ')
  }

  #push(line: string): void {
    this.#lines.push(line)
    if (this.#lines.length > KEEP) this.#lines.shift()
  }
}
