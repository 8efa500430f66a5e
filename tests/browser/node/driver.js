// A tiny line-oriented RPC around playwright-core, so that a Python test can drive Debian's
// headless Chromium step by step: one JSON request per stdin line, one JSON reply per stdout
// line ({id, ok, value} or {id, ok: false, error}). Page errors are reported as
// {event: 'pageerror', page, message} lines. Usage: node driver.js USER_DATA_DIR
'use strict';

const readline = require('node:readline');
const { chromium } = require('playwright-core');

const EXECUTABLE = process.env.HEARTBEAT_CHROMIUM || '/usr/bin/chromium';
const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

function emit(record) {
  process.stdout.write(`${JSON.stringify(record)}\n`);
}

async function main() {
  const userDataDir = process.argv[2];
  if (!userDataDir) throw new Error('usage: node driver.js USER_DATA_DIR');
  // (playwright refuses --user-data-dir in args: a persistent context is how it is given.)
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: EXECUTABLE,
    headless: true,
    args: ARGS,
    viewport: { width: 1100, height: 820 },
  });
  const pages = new Map();
  let nextPage = 1;
  for (const page of context.pages()) await page.close();

  const ops = {
    async newPage({ width, height }) {
      const page = await context.newPage();
      if (width && height) await page.setViewportSize({ width, height });
      const id = nextPage++;
      pages.set(id, page);
      page.on('pageerror', (error) => emit({ event: 'pageerror', page: id, message: String(error) }));
      page.on('console', (msg) => emit({ event: 'console', page: id, type: msg.type(), text: msg.text() }));
      return id;
    },
    async goto({ page, url }) {
      const response = await pages.get(page).goto(url, { waitUntil: 'load', timeout: 15000 });
      return response ? response.status() : null;
    },
    async evaluate({ page, expr }) {
      return pages.get(page).evaluate(expr);
    },
    async waitFor({ page, expr, timeout_ms: timeout }) {
      // Polled with page.evaluate (CDP's evaluate is not subject to the page's CSP, which
      // forbids the string eval that page.waitForFunction(string) would need).
      const end = Date.now() + timeout;
      for (;;) {
        const value = await pages.get(page).evaluate(expr);
        if (value) return value;
        if (Date.now() > end) throw new Error(`timed out after ${timeout} ms waiting for: ${expr}`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    },
    async addScript({ page, url }) {
      await pages.get(page).addScriptTag({ url });
      return true;
    },
    async screenshot({ page, path, fullPage }) {
      await pages.get(page).screenshot({ path, fullPage: Boolean(fullPage) });
      return path;
    },
    async closePage({ page }) {
      await pages.get(page).close();
      pages.delete(page);
      return true;
    },
  };

  emit({ event: 'ready', version: context.browser() ? context.browser().version() : null });
  const lines = readline.createInterface({ input: process.stdin });
  for await (const line of lines) {
    if (!line.trim()) continue;
    const request = JSON.parse(line);
    if (request.op === 'quit') break;
    try {
      const op = ops[request.op];
      if (!op) throw new Error(`unknown op ${request.op}`);
      emit({ id: request.id, ok: true, value: (await op(request)) ?? null });
    } catch (error) {
      emit({ id: request.id, ok: false, error: String(error && error.stack ? error.stack : error) });
    }
  }
  await context.close();
}

main().then(
  () => process.exit(0),
  (error) => {
    emit({ event: 'fatal', error: String(error && error.stack ? error.stack : error) });
    process.exit(1);
  },
);
