/**
 * Prints, after vitest's summary, one short line per failed test and per unhandled error with
 * its message and the first project frame. CI keeps only the tail of a run's output; without
 * this, a rare unhandled error's message scrolls out of it above the summary.
 */
import type { Reporter, SerializedError, TestModule } from 'vitest/node'

const MAX_LINES = 8

export default class FailureDigestReporter implements Reporter {
  onTestRunEnd(modules: readonly TestModule[], unhandledErrors: readonly SerializedError[]): void {
    const lines: string[] = []
    for (const error of unhandledErrors) {
      // vitest names the file (and the test) that was running when the error was thrown.
      const during = [error['VITEST_TEST_PATH'], error['VITEST_TEST_NAME']].filter((part) => typeof part === 'string').join(' > ')
      lines.push(`unhandled${during ? ` during ${during.replace(`${process.cwd()}/`, '')}` : ''}: ${describe(error)}`)
    }
    for (const module of modules) {
      const path = module.moduleId.replace(`${process.cwd()}/`, '')
      // A hook's failure (an afterAll that timed out, say) or a collection error is the module's or a suite's, not a test's.
      for (const error of module.errors()) lines.push(`failed: ${path}: ${describe(error)}`)
      for (const suite of module.children.allSuites()) for (const error of suite.errors()) lines.push(`failed: ${path} > ${suite.fullName}: ${describe(error)}`)
      for (const test of module.children.allTests('failed')) {
        lines.push(`failed: ${path} > ${test.fullName}: ${describe(test.result().errors?.[0])}`)
      }
    }
    if (lines.length === 0) return
    const shown = lines.slice(0, MAX_LINES)
    if (lines.length > shown.length) shown.push(`… and ${lines.length - shown.length} more above`)
    process.stdout.write(`\nfailure digest:\n${shown.map((line) => `  ${line}`).join('\n')}\n`)
  }
}

function describe(error: SerializedError | undefined): string {
  if (!error) return 'no error recorded'
  const message = `${error.name ?? 'Error'}: ${error.message ?? ''}`.replace(/\s+/g, ' ').slice(0, 300)
  const frame = (error.stack ?? '').split('\n').find((line) => /\/(src|test|soak|bench)\//.test(line) && !line.includes('node_modules'))
  return frame ? `${message} (${frame.trim().replace(`${process.cwd()}/`, '')})` : message
}
