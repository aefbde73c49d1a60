/**
 * The demo page in a real browser: Debian's `chromium` driven by `playwright-core` (`.ci/run`
 * installs it when missing). Two pages on the demo; an item added in one shows in the other;
 * the server restarts and both pages reconnect by themselves (`EventSource` + `Last-Event-ID`)
 * and keep working. A screenshot lands in `test-output/`.
 */
import { existsSync } from 'node:fs'
import { mkdir, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { chromium, type BrowserContext, type Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTestSluice, type TestSluice } from './support/sluice.js'

const CHROMIUM = '/usr/bin/chromium'
const OUTPUT = new URL('../test-output/', import.meta.url)

let sluice: TestSluice
let context: BrowserContext
let userDataDir: string

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install -y chromium (.ci/run does this)`)
  sluice = await startTestSluice({ demo: true, sseRetryMs: 200 })
  userDataDir = await mkdtemp(join(tmpdir(), 'sluice-chromium-'))
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  })
})

afterAll(async () => {
  await context?.close()
  if (userDataDir) await rm(userDataDir, { recursive: true, force: true })
  await sluice?.close()
})

async function openDemo(): Promise<Page> {
  const page = await context.newPage()
  await page.goto(`${sluice.server.url}/`)
  await waitLive(page)
  return page
}

async function waitLive(page: Page): Promise<void> {
  // Expressions as strings: they run in the page, and this project type-checks without the DOM lib.
  await page.waitForFunction(`document.querySelector('#status')?.dataset.state === 'live'`, undefined, { timeout: 20_000 })
}

const titles = (page: Page) => page.$$eval('#items li span', (spans) => spans.map((span) => span.textContent ?? ''))

async function waitForTitle(page: Page, title: string, present = true): Promise<void> {
  const expression = `[...document.querySelectorAll('#items li span')].some((span) => span.textContent === ${JSON.stringify(title)}) === ${present}`
  await page.waitForFunction(expression, undefined, { timeout: 20_000 })
}

async function add(page: Page, title: string): Promise<void> {
  await page.fill('#title', title)
  await page.click('#add button[type=submit]')
}

describe('the demo page in Chromium', () => {
  it('syncs two pages live, and both recover from a server restart', async () => {
    const first = await openDemo()
    const second = await openDemo()
    expect(await titles(first)).toEqual(['Read the README', 'Sync a shape with curl', 'Try @electric-sql/client'])
    expect(await first.textContent('#status')).toMatch(/^live · offset [0-9]+_(inf|[0-9]+)$/)

    await add(first, 'Written in the first page')
    await waitForTitle(second, 'Written in the first page')

    // Toggle and delete from the second page; the first follows.
    await second.click('#items li:has(span:text-is("Sync a shape with curl")) input[type=checkbox]')
    await first.waitForSelector('#items li.done:has(span:text-is("Sync a shape with curl"))', { timeout: 20_000 })
    await second.click('#items li:has(span:text-is("Read the README")) button.delete')
    await waitForTitle(first, 'Read the README', false)

    const port = Number(new URL(sluice.server.url).port)
    await sluice.restart({ overrides: { port } })
    // Both EventSources reconnect on their own with Last-Event-ID and go live again.
    await waitLive(first)
    await waitLive(second)

    await add(second, 'Written after the restart')
    await waitForTitle(first, 'Written after the restart')
    await add(first, 'And once more')
    await waitForTitle(second, 'And once more')

    const { rows } = await sluice.db.pool.query<{ title: string }>('SELECT title FROM items ORDER BY id')
    const expected = rows.map((row) => row.title)
    // Each page shows its own writes once its stream delivers them: wait rather than race.
    await expect.poll(() => titles(first), { timeout: 15_000 }).toEqual(expected)
    await expect.poll(() => titles(second), { timeout: 15_000 }).toEqual(expected)

    await mkdir(OUTPUT, { recursive: true })
    await first.screenshot({ path: new URL('demo-browser.png', OUTPUT).pathname, fullPage: true })
  })
})
