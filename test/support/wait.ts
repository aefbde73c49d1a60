/** Retries an assertion until it passes or `timeoutMs` runs out (then throws its last error). */
export async function waitFor<T>(check: () => T | Promise<T>, timeoutMs = 15_000, everyMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    try {
      return await check()
    } catch (error) {
      if (Date.now() > deadline) throw error
      await new Promise((resolve) => setTimeout(resolve, everyMs))
    }
  }
}

/**
 * Lets every promise chain started so far run to its end, for code that uses no timers: one
 * turn of the event loop. What has not happened then is held back, not merely late.
 */
export function drained(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve))
}
