// Drives Debian's firefox-esr for the Python browser tests (tests/firefox_pages.py) over
// WebDriver BiDi with puppeteer-core, which downloads no browser. One Firefox per process;
// requests and answers are JSON lines on stdin and stdout:
//   {"id": 1, "op": "newPage", "context": "c1"}  ->  {"id": 1, "result": "p1"}
// and the pages' uncaught errors come unasked: {"event": "pageerror", "page": "p1", ...}.

import { createInterface } from "node:readline";
import puppeteer from "puppeteer-core";

const options = JSON.parse(process.argv[2] || "{}");
const browser = await puppeteer.launch({
  browser: "firefox",
  executablePath: options.executablePath || "/usr/bin/firefox-esr",
  // Not headless on a display of its own (the test's Xvfb): headless Firefox has no screen
  // to share (tests/test_browser_e2ee_browsers.py).
  headless: options.headless !== false,
  extraPrefsFirefox: options.prefs || {},
});
const contexts = new Map();
const pages = new Map();
const scripts = new Map(); // context id -> init scripts, for the pages it opens later
let counter = 0;
const send = (message) => process.stdout.write(JSON.stringify(message) + "\n");
const page = (id) => {
  const found = pages.get(id);
  if (!found) throw new Error(`no page ${id}`);
  return found;
};

// Playwright's rule: a source that evaluates to a function is called with the argument.
const callable = (source) => /^\s*(async\s+)?(function\b|\([^)]*\)\s*=>|\w+\s*=>)/.test(source);

const ops = {
  async newContext() {
    const id = `c${++counter}`;
    contexts.set(id, await browser.createBrowserContext());
    scripts.set(id, []);
    return id;
  },
  async newPage({ context }) {
    const opened = await contexts.get(context).newPage();
    const id = `p${++counter}`;
    pages.set(id, opened);
    opened.on("pageerror", (error) => send({ event: "pageerror", page: id, message: String(error && error.message || error) }));
    for (const source of scripts.get(context)) await opened.evaluateOnNewDocument(source);
    return id;
  },
  async addInitScript({ context, source }) {
    scripts.get(context).push(source);
    for (const opened of pages.values()) {
      if (opened.browserContext() === contexts.get(context)) await opened.evaluateOnNewDocument(source);
    }
  },
  async goto({ page: id, url }) {
    await page(id).goto(url, { waitUntil: "load" });
  },
  async evaluate({ page: id, source, arg }) {
    const expression = callable(source) ? `(${source})(${JSON.stringify(arg ?? null)})` : source;
    return page(id).evaluate(expression);
  },
  async waitForSelector({ page: id, selector, timeout }) {
    await page(id).waitForSelector(selector, { timeout });
  },
  async click({ page: id, selector, timeout }) {
    await page(id).locator(selector).setTimeout(timeout).click();
  },
  async fill({ page: id, selector, value, timeout }) {
    await page(id).locator(selector).setTimeout(timeout).fill(value);
  },
};

const lines = createInterface({ input: process.stdin });
lines.on("line", async (line) => {
  const request = JSON.parse(line);
  try {
    const result = await ops[request.op](request);
    send({ id: request.id, result: result ?? null });
  } catch (error) {
    send({ id: request.id, error: String(error && error.stack || error) });
  }
});
// The test closes stdin when it is done (or dies): Firefox goes with it.
lines.on("close", async () => {
  await browser.close().catch(() => {});
  process.exit(0);
});
send({ event: "ready", version: await browser.version() });
