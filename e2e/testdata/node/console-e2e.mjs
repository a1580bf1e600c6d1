// console-e2e.mjs drives hookd's web console in Debian's Chromium with
// playwright-core, against a running hookd.
//
// Environment:
//   HOOKD_URL            base URL of hookd, e.g. http://127.0.0.1:8080
//   HOOKD_CUSTOMER       customer UUID
//   HOOKD_CLIENT_ID      client id of that customer
//   HOOKD_CLIENT_SECRET  its secret
//   HOOKD_ENDPOINT       listener URL for the subscription the test creates
//   HOOKD_ARTIFACTS      directory for screenshots (created if missing)
//   HOOKD_CHROMIUM       optional, default /usr/bin/chromium
//   HOOKD_E2E_TIMEOUT_MS optional overall limit, default 180000
//
// Protocol with the harness (line based):
//   stdout  "step: ..."                    progress
//   stdout  "READY_FOR_EVENTS <subId>"     the subscription exists and is
//                                          disabled: post events for it now
//   stdin   "EVENTS_DONE"                  the events were accepted
//   stdout  "PASS"                         at the end, exit status 0
//   stderr  "FAIL: ..."                    on failure, with failure.png, exit 1

import { chromium } from 'playwright-core';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import readline from 'node:readline';

const chromiumArgs = [
  '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

function need(name) {
  const v = process.env[name];
  if (!v) throw new Error(`environment variable ${name} is not set`);
  return v;
}

function step(text) {
  process.stdout.write(`step: ${text}\n`);
}

// Lines from stdin, kept until someone waits for them.
const stdinLines = [];
let stdinWaiter = null;
let stdinClosed = false;
const rl = readline.createInterface({ input: process.stdin });
rl.on('line', (line) => {
  stdinLines.push(line.trim());
  if (stdinWaiter) stdinWaiter();
});
rl.on('close', () => {
  stdinClosed = true;
  if (stdinWaiter) stdinWaiter();
});

async function waitForStdinLine(want, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const i = stdinLines.indexOf(want);
    if (i >= 0) {
      stdinLines.splice(0, i + 1);
      return;
    }
    if (stdinClosed) throw new Error(`stdin closed before ${want}`);
    const left = deadline - Date.now();
    if (left <= 0) throw new Error(`no ${want} on stdin within ${timeoutMs} ms`);
    await new Promise((resolve) => {
      const t = setTimeout(resolve, left);
      stdinWaiter = () => {
        clearTimeout(t);
        resolve();
      };
    });
    stdinWaiter = null;
  }
}

async function readAll(stream) {
  const chunks = [];
  for await (const c of stream) chunks.push(c);
  return Buffer.concat(chunks).toString('utf8');
}

async function noHorizontalScroll(page, what) {
  const { scroll, inner } = await page.evaluate(() => ({
    scroll: document.documentElement.scrollWidth, inner: window.innerWidth,
  }));
  if (scroll > inner) throw new Error(`${what}: page is ${scroll}px wide at a ${inner}px viewport, want no horizontal scroll`);
}

async function run(page, cfg, problems) {
  const tid = (id) => `[data-testid="${id}"]`;
  const alert = page.locator(tid('alert'));

  step('open the console');
  await page.goto(`${cfg.url}/console/?customer=${encodeURIComponent(cfg.customer)}`);
  const customerField = page.locator(tid('signin-customer'));
  await customerField.waitFor();
  const prefilled = await customerField.inputValue();
  if (prefilled !== cfg.customer) throw new Error(`customer field: got ${JSON.stringify(prefilled)}, want it prefilled with ${cfg.customer}`);

  step('sign in');
  await page.locator(tid('signin-client-id')).fill(cfg.clientId);
  await page.locator(tid('signin-client-secret')).fill(cfg.clientSecret);
  await page.locator(tid('signin-submit')).click();
  await page.locator(tid('sub-list')).waitFor();
  await page.locator(`${tid('sub-list')}[aria-busy="false"]`).waitFor();
  const stored = await page.evaluate(() => localStorage.length + sessionStorage.length + document.cookie.length);
  if (stored !== 0) throw new Error(`browser storage: got ${stored} entries, want the token kept in memory only`);

  step('create the subscription "e2e subscription"');
  await page.locator(tid('create-title')).fill('e2e subscription');
  await page.locator(tid('create-endpoint')).fill(cfg.endpoint);
  await page.locator(tid('create-event-entityCreated')).check();
  const [created] = await Promise.all([
    page.waitForResponse((r) => r.request().method() === 'POST' && /\/webhooks\/subscriptions$/.test(new URL(r.url()).pathname)),
    page.locator(tid('create-submit')).click(),
  ]);
  if (created.status() !== 201) {
    throw new Error(`create subscription: got status ${created.status()} (${await created.text()}), want 201`);
  }
  const sid = (await created.json()).id;
  const row = page.locator(`${tid('sub-row')}[data-sub-id="${sid}"]`);
  await row.waitFor();
  const rowTitle = await row.locator(tid('sub-open')).textContent();
  if (rowTitle !== 'e2e subscription') throw new Error(`row title: got ${JSON.stringify(rowTitle)}, want "e2e subscription"`);
  step(`subscription ${sid} is listed`);

  step('disable it');
  await row.locator(tid('sub-toggle')).click();
  await page.locator(`${tid('sub-row')}[data-sub-id="${sid}"][data-enabled="false"]`).waitFor();
  await page.locator(`${tid('sub-row')}[data-sub-id="${sid}"] ${tid('sub-toggle')}[aria-checked="false"]`).waitFor();
  const state = await row.locator(tid('sub-state')).textContent();
  if (state !== 'disabled') throw new Error(`row state: got ${JSON.stringify(state)}, want "disabled"`);

  process.stdout.write(`READY_FOR_EVENTS ${sid}\n`);
  step('waiting for EVENTS_DONE on stdin');
  await waitForStdinLine('EVENTS_DONE', cfg.eventsTimeoutMs);

  step('open the subscription and refresh its summary');
  await row.locator(tid('sub-open')).click();
  await page.locator(`${tid('detail')}[data-sub-id="${sid}"]`).waitFor();
  const failedCount = page.locator(`${tid('detail-summary')} ${tid('summary-failed')}`);
  let failedText = '';
  let failed = 0;
  for (let i = 0; i < 20 && !(failed >= 1); i++) {
    if (i > 0) await page.waitForTimeout(500);
    await page.locator(tid('summary-refresh')).click();
    await page.locator(`${tid('summary-refresh')}:not([disabled])`).waitFor();
    failedText = await failedCount.textContent();
    failed = Number(failedText);
  }
  if (!(failed >= 1)) throw new Error(`summary failed: got ${JSON.stringify(failedText)}, want a number >= 1`);
  step(`summary shows ${failed} failed`);

  step('open the history of an event');
  const eventRow = page.locator(tid('event-row')).first();
  await eventRow.waitFor();
  const eventState = await eventRow.getAttribute('data-state');
  if (eventState !== 'failure') throw new Error(`event state: got ${JSON.stringify(eventState)}, want "failure"`);
  await eventRow.locator(tid('event-open')).click();
  const historyRows = page.locator(`${tid('history-table')} ${tid('history-row')}`);
  await historyRows.first().waitFor();
  const historyHeads = await page.locator(`${tid('history-table')} th`).allTextContents();
  for (const want of ['Time', 'State', 'Reason']) {
    if (!historyHeads.includes(want)) throw new Error(`history columns: got ${JSON.stringify(historyHeads)}, want ${want} among them`);
  }
  const lastState = await historyRows.last().locator(tid('state-badge')).getAttribute('data-state');
  if (lastState !== 'failure') throw new Error(`last history state: got ${JSON.stringify(lastState)}, want "failure"`);
  await page.locator(tid('event-history')).screenshot({ path: path.join(cfg.artifacts, 'console-history.png') });
  await page.locator(tid('history-close')).click();
  step(`history shows ${await historyRows.count()} entries`);

  step('send a test notification');
  await page.locator(tid('test-send')).click();
  await page.locator(`${tid('test-result')}[data-success]`).waitFor();
  const testSuccess = await page.locator(tid('test-result')).getAttribute('data-success');
  if (testSuccess !== 'true') throw new Error(`test notification: got success ${testSuccess}, want true (the listener answers 200)`);

  step('start an export');
  const [started] = await Promise.all([
    page.waitForResponse((r) => r.request().method() === 'POST' && /\/exports$/.test(new URL(r.url()).pathname)),
    page.locator(tid('export-start')).click(),
  ]);
  if (started.status() !== 202) throw new Error(`start export: got status ${started.status()} (${await started.text()}), want 202`);
  const jobId = (await started.json()).id;
  const exportRow = page.locator(`${tid('export-row')}[data-export-id="${jobId}"]`);
  await exportRow.waitFor();
  const deadline = Date.now() + 30000;
  let jobState = '';
  for (;;) {
    jobState = await exportRow.getAttribute('data-state');
    if (jobState === 'completed') break;
    if (jobState === 'failed' || jobState === 'canceled') throw new Error(`export ${jobId}: got state ${jobState}, want completed`);
    if (Date.now() > deadline) throw new Error(`export ${jobId}: still ${jobState} after 30 s, want completed`);
    await page.waitForTimeout(250);
  }
  const eventCount = Number(await exportRow.getAttribute('data-event-count'));
  step(`export ${jobId} completed with ${eventCount} events`);
  if (!(eventCount >= 1)) throw new Error(`export eventCount: got ${eventCount}, want >= 1`);

  step('download the export');
  const [download] = await Promise.all([
    page.waitForEvent('download'),
    exportRow.locator(tid('export-download')).click(),
  ]);
  const text = await readAll(await download.createReadStream());
  const lines = text.split('\n').filter((l) => l.trim() !== '');
  if (lines.length !== eventCount) throw new Error(`download: got ${lines.length} NDJSON lines, want ${eventCount} (the row's eventCount)`);
  for (const [i, line] of lines.entries()) {
    try {
      JSON.parse(line);
    } catch (err) {
      throw new Error(`download line ${i + 1}: not JSON (${err.message})`);
    }
  }
  // The body is saved as fetch() decoded it, so a compressed file keeps no .gz or .zst suffix.
  if (download.suggestedFilename() !== `${jobId}.ndjson`) {
    throw new Error(`download name: got ${JSON.stringify(download.suggestedFilename())}, want "${jobId}.ndjson"`);
  }
  await writeFile(path.join(cfg.artifacts, 'console-export.ndjson'), text);
  step(`downloaded ${download.suggestedFilename()} with ${lines.length} lines`);

  step('screenshots');
  await page.setViewportSize({ width: 1280, height: 800 });
  await page.screenshot({ path: path.join(cfg.artifacts, 'console-desktop.png'), fullPage: true });
  await page.setViewportSize({ width: 375, height: 800 });
  await noHorizontalScroll(page, 'subscription view at 375px');
  await page.screenshot({ path: path.join(cfg.artifacts, 'console-phone.png'), fullPage: true });
  await page.locator(tid('back-to-list')).click();
  await page.locator(`${tid('sub-list')}[aria-busy="false"]`).waitFor();
  await noHorizontalScroll(page, 'subscriptions list at 375px');
  await page.screenshot({ path: path.join(cfg.artifacts, 'console-phone-list.png'), fullPage: true });
  await page.setViewportSize({ width: 1280, height: 800 });

  step('a 1-character title shows the validation error');
  await page.locator(tid('create-title')).fill('x');
  await page.locator(tid('create-endpoint')).fill(cfg.endpoint);
  await page.locator(tid('create-event-entityCreated')).check();
  await page.locator(tid('create-submit')).click();
  const message = alert.locator(tid('alert-message')).last();
  await message.waitFor();
  const alertText = await message.textContent();
  if (!/title/i.test(alertText)) throw new Error(`alert: got ${JSON.stringify(alertText)}, want it to name the title`);
  await page.screenshot({ path: path.join(cfg.artifacts, 'console-validation.png') });
  await message.locator(tid('alert-dismiss')).click();
  await message.waitFor({ state: 'detached' });
  step('validation error shown and dismissed');

  step('delete a subscription through the confirm dialog');
  await page.locator(tid('create-title')).fill('e2e subscription to delete');
  await page.locator(tid('create-endpoint')).fill(cfg.endpoint);
  const [second] = await Promise.all([
    page.waitForResponse((r) => r.request().method() === 'POST' && /\/webhooks\/subscriptions$/.test(new URL(r.url()).pathname)),
    page.locator(tid('create-submit')).click(),
  ]);
  if (second.status() !== 201) throw new Error(`create second subscription: got status ${second.status()}, want 201`);
  const sid2 = (await second.json()).id;
  const row2 = page.locator(`${tid('sub-row')}[data-sub-id="${sid2}"]`);
  await row2.locator(tid('sub-delete')).click();
  await page.locator(tid('confirm-cancel')).click();
  await page.locator(`${tid('confirm-dialog')}:not([open])`).waitFor({ state: 'attached' });
  if ((await row2.count()) !== 1) throw new Error('delete canceled: got the row removed, want it kept');
  await row2.locator(tid('sub-delete')).click();
  await page.locator(tid('confirm-ok')).click();
  await row2.waitFor({ state: 'detached' });
  if ((await row.count()) !== 1) throw new Error('delete: got the first subscription removed too, want it kept');

  if (problems.length > 0) throw new Error(`page problems:\n  ${problems.join('\n  ')}`);
}

async function main() {
  const cfg = {
    url: need('HOOKD_URL').replace(/\/+$/, ''),
    customer: need('HOOKD_CUSTOMER'),
    clientId: need('HOOKD_CLIENT_ID'),
    clientSecret: need('HOOKD_CLIENT_SECRET'),
    endpoint: need('HOOKD_ENDPOINT'),
    artifacts: need('HOOKD_ARTIFACTS'),
    eventsTimeoutMs: 120000,
  };
  const overall = Number(process.env.HOOKD_E2E_TIMEOUT_MS || 180000);
  await mkdir(cfg.artifacts, { recursive: true });

  const timer = setTimeout(() => {
    process.stderr.write(`FAIL: console e2e did not finish within ${overall} ms\n`);
    process.exit(1);
  }, overall);

  let browser;
  let page;
  const problems = [];
  try {
    step('launch chromium');
    browser = await chromium.launch({
      executablePath: process.env.HOOKD_CHROMIUM || '/usr/bin/chromium',
      headless: true,
      args: chromiumArgs,
    });
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, acceptDownloads: true });
    context.setDefaultTimeout(15000);
    page = await context.newPage();
    page.on('pageerror', (err) => problems.push(`uncaught: ${err.message}`));
    page.on('console', (msg) => {
      if (/Content Security Policy|Refused to/i.test(msg.text())) problems.push(`console: ${msg.text()}`);
    });
    await run(page, cfg, problems);
    process.stdout.write('PASS\n');
    await browser.close();
    clearTimeout(timer);
    process.exit(0);
  } catch (err) {
    process.stderr.write(`FAIL: ${err && err.stack ? err.stack : err}\n`);
    for (const p of problems) process.stderr.write(`page problem: ${p}\n`);
    if (page) {
      await page.screenshot({ path: path.join(cfg.artifacts, 'failure.png'), fullPage: true }).catch(() => {});
    }
    if (browser) await browser.close().catch(() => {});
    clearTimeout(timer);
    process.exit(1);
  }
}

main().catch((err) => {
  process.stderr.write(`FAIL: ${err && err.stack ? err.stack : err}\n`);
  process.exit(1);
});
