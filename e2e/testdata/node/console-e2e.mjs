// console-e2e.mjs drives hookd's web console in Debian's Chromium with
// playwright-core, against a running hookd.
//
// Environment:
//   HOOKD_URL            base URL of hookd, e.g. http://127.0.0.1:8080
//   HOOKD_CUSTOMER       customer UUID
//   HOOKD_CLIENT_ID      client id of that customer
//   HOOKD_CLIENT_SECRET  its secret
//   HOOKD_ENDPOINT       listener URL for the subscription the test creates
//   HOOKD_FAILING_ENDPOINT  listener URL that answers 500 with a body
//   HOOKD_ARTIFACTS      directory for screenshots (created if missing)
//   HOOKD_CHROMIUM       optional, default /usr/bin/chromium
//   HOOKD_E2E_TIMEOUT_MS optional overall limit, default 180000
//
// Protocol with the harness (line based):
//   stdout  "step: ..."                    progress
//   stdout  "READY_FOR_EVENTS <subId>"     the subscription exists: post
//                                          events for it now (the first one
//                                          is disabled: they fail at once)
//   stdout  "READY_FOR_SAME_SUB <subId> <sub>"  post two events of that sub
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

// The two widths every screen is checked and photographed at.
const desktop = { width: 1366, height: 900 };
const phone = { width: 390, height: 844 };

// shoot saves the page at both widths as <name>-desktop.png and
// <name>-phone.png, checking that the phone width needs no horizontal
// scroll, and goes back to the desktop width.
async function shoot(page, cfg, name, { fullPage = true } = {}) {
  await page.setViewportSize(desktop);
  await page.screenshot({ path: path.join(cfg.artifacts, `${name}-desktop.png`), fullPage });
  await page.setViewportSize(phone);
  await noHorizontalScroll(page, `${name} at ${phone.width}px`);
  await page.screenshot({ path: path.join(cfg.artifacts, `${name}-phone.png`), fullPage });
  await page.setViewportSize(desktop);
}

// sameField wants the error element to sit in the same form field as the control it names.
async function sameField(page, controlSel, errorSel, what) {
  const ok = await page.evaluate(([c, e]) => {
    const control = document.querySelector(c);
    const error = document.querySelector(e);
    if (!control || !error) return false;
    const field = control.closest('.field');
    return Boolean(field && field.contains(error) && control.getAttribute('aria-describedby').includes(error.id));
  }, [controlSel, errorSel]);
  if (!ok) throw new Error(`${what}: want the error next to its field (same .field, aria-describedby)`);
}

async function run(page, cfg, problems) {
  const tid = (id) => `[data-testid="${id}"]`;
  const alert = page.locator(tid('alert'));

  step('/ leads to the console');
  await page.goto(`${cfg.url}/`);
  await page.locator(tid('signin-customer')).waitFor();
  if (new URL(page.url()).pathname !== '/console/') throw new Error(`/: got ${page.url()}, want /console/`);

  step('the API reference link leads to the OpenAPI description');
  const apiHref = await page.locator(tid('api-reference')).getAttribute('href');
  const apiDoc = await (await page.request.get(new URL(apiHref, page.url()).toString())).json();
  if (!String(apiDoc.openapi).startsWith('3.1') || !apiDoc.paths['/{customerId}/webhooks/subscriptions']) {
    throw new Error(`API reference ${apiHref}: got openapi ${JSON.stringify(apiDoc.openapi)}, want the OpenAPI 3.1 description of the API`);
  }

  step('open the console');
  await page.goto(`${cfg.url}/console/?customer=${encodeURIComponent(cfg.customer)}`);
  const customerField = page.locator(tid('signin-customer'));
  await customerField.waitFor();
  const prefilled = await customerField.inputValue();
  if (prefilled !== cfg.customer) throw new Error(`customer field: got ${JSON.stringify(prefilled)}, want it prefilled with ${cfg.customer}`);

  step('a wrong secret shows the page\'s own error within 2 s');
  await page.locator(tid('signin-client-id')).fill(cfg.clientId);
  await page.locator(tid('signin-client-secret')).fill(`${cfg.clientSecret}-wrong`);
  // Measured in the page, from the form's submit to the error showing, so
  // the test runner's own latency on a busy machine does not count.
  await page.evaluate(() => {
    const el = document.querySelector('[data-testid="signin-client-secret-error"]');
    document.querySelector('[data-testid="signin-form"]').addEventListener('submit', () => {
      window.hookdSubmitAt = performance.now();
    }, { capture: true, once: true });
    new MutationObserver(() => {
      if (!el.hidden && !window.hookdErrorAt) window.hookdErrorAt = performance.now();
    }).observe(el, { attributes: true, childList: true });
  });
  await page.locator(tid('signin-submit')).click();
  const secretError = page.locator(tid('signin-client-secret-error'));
  await secretError.waitFor({ state: 'visible', timeout: 5000 });
  const waited = Math.round(await page.evaluate(() => window.hookdErrorAt - window.hookdSubmitAt));
  if (!(waited >= 0 && waited < 2000)) throw new Error(`wrong secret: the error showed ${waited} ms after submit, want under 2000 ms`);
  if (!/not valid/i.test(await secretError.textContent())) throw new Error(`secret error: got ${JSON.stringify(await secretError.textContent())}, want it to say the credentials are not valid`);
  await sameField(page, '#signin-client-secret', '#signin-client-secret-error', 'wrong secret');
  if (await page.locator(`${tid('signin-submit')}[aria-busy="true"]`).count() !== 0) throw new Error('wrong secret: got the button still busy, want it ready again');
  step(`the error showed after ${waited} ms`);
  await shoot(page, cfg, 'console-signin-error');

  step('sign in');
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

  step('disable it, after the warning that waiting events become failures');
  await row.locator(tid('sub-toggle')).click();
  await page.locator(`${tid('confirm-dialog')}[open]`).waitFor();
  const warning = await page.locator('#confirm-text').textContent();
  if (!/marked failed/.test(warning)) throw new Error(`disable warning: got ${JSON.stringify(warning)}, want it to say waiting events will be marked failed`);
  await page.locator(tid('confirm-ok')).click();
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

  step('the chart of the last 7 days shows the same failures (it refreshes itself every 5 s)');
  const chart = page.locator(`${tid('timeline-chart')}[data-failed="${failed}"]`);
  await chart.waitFor({ timeout: 15000 });
  const summarySucceeded = await page.locator(`${tid('detail-summary')} ${tid('summary-succeeded')}`).textContent();
  const chartSucceeded = await chart.getAttribute('data-succeeded');
  if (chartSucceeded !== summarySucceeded) throw new Error(`chart succeeded: got ${JSON.stringify(chartSucceeded)}, want the summary's ${JSON.stringify(summarySucceeded)}`);
  const failedBars = await chart.locator('svg rect.chart-bad').evaluateAll((rs) => rs.filter((r) => Number(r.getAttribute('height')) > 0).length);
  if (failedBars < 1) throw new Error(`chart: got ${failedBars} failure bars, want at least 1`);
  step(`chart shows ${failed} failed in ${failedBars} hour(s)`);
  // The events failed a moment ago: the last hour's chart, per minute, has them all too.
  const minutes = page.locator(`${tid('timeline-minutes-chart')}[data-failed="${failed}"][data-succeeded="${summarySucceeded}"]`);
  await minutes.waitFor({ timeout: 15000 });
  const failedMinutes = await minutes.locator('svg rect.chart-bad').evaluateAll((rs) => rs.filter((r) => Number(r.getAttribute('height')) > 0).length);
  if (failedMinutes < 1) throw new Error(`minutes chart: got ${failedMinutes} failure bars, want at least 1`);
  step(`the last hour's chart shows ${failed} failed in ${failedMinutes} minute(s)`);
  // The page asks again by itself, with no click.
  await page.waitForRequest((req) => req.url().endsWith(`/subscriptions/${sid}/summary/timeline`), { timeout: 15000 });
  step('the chart asked for the timeline again by itself');

  step('the event list: type, milliseconds, newest first, then oldest first');
  const eventRows = page.locator(tid('event-row'));
  await eventRows.first().waitFor();
  const createdTimes = async () => (await eventRows.evaluateAll((rows) => rows.map((r) => r.dataset.createdAt)));
  const newestFirst = await createdTimes();
  if (newestFirst.length < 2 || newestFirst.some((t, i) => i > 0 && t > newestFirst[i - 1])) {
    throw new Error(`default order: got createdAt ${JSON.stringify(newestFirst)}, want newest first`);
  }
  const types = await page.locator(`${tid('event-row')} ${tid('event-type')}`).allTextContents();
  if (types.some((t) => t !== 'entityCreated')) throw new Error(`event types: got ${JSON.stringify(types)}, want entityCreated on every row`);
  const firstTime = eventRows.first().locator('time');
  const shown = await firstTime.textContent();
  const utc = await firstTime.getAttribute('title');
  if (!/\d[.,]\d{3}/.test(shown)) throw new Error(`event time: got ${JSON.stringify(shown)}, want milliseconds`);
  if (!/^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d+ UTC$/.test(utc)) throw new Error(`event time tooltip: got ${JSON.stringify(utc)}, want the UTC value`);
  const newestId = await eventRows.first().getAttribute('data-event-id');
  await page.locator(tid('events-order')).click();
  await page.locator(`${tid('events-order')}[aria-pressed="true"]`).waitFor();
  await page.waitForFunction((want) => {
    const rows = [...document.querySelectorAll('[data-testid="event-row"]')];
    return rows.length > 0 && rows[rows.length - 1].dataset.eventId === want;
  }, newestId);
  const oldestFirst = await createdTimes();
  if (oldestFirst.some((t, i) => i > 0 && t < oldestFirst[i - 1])) throw new Error(`oldest first: got ${JSON.stringify(oldestFirst)}`);
  await page.locator(tid('events-order')).click();
  await page.locator(`${tid('events-order')}[aria-pressed="false"]`).waitFor();

  step('filter by type: entityDeleted shows none');
  await page.locator(tid('event-type-filter')).selectOption('entityDeleted');
  await page.locator(`${tid('events-empty')}:not([hidden])`).waitFor();
  await page.locator(tid('event-type-filter')).selectOption('');
  await eventRows.first().waitFor();

  step('filter by time range: a range in the future shows none, an end before the start is refused');
  await page.locator(tid('event-from')).fill('2099-01-01T00:00:00');
  await page.locator(`${tid('events-empty')}:not([hidden])`).waitFor();
  await page.locator(tid('event-to')).fill('2098-01-01T00:00:00');
  await page.locator(tid('event-range-error')).waitFor({ state: 'visible' });
  await page.locator(tid('event-from')).fill('');
  await page.locator(tid('event-to')).fill('');
  await eventRows.first().waitFor();

  step('search by event id goes straight to the event');
  await page.locator(tid('event-search')).fill('not-an-id');
  await page.locator(tid('event-search-submit')).click();
  await page.locator(tid('event-search-error')).waitFor({ state: 'visible' });
  await page.locator(tid('event-search')).fill('00000000-0000-4000-8000-000000000000');
  await page.locator(tid('event-search-submit')).click();
  await page.waitForFunction(() => /No event/.test(document.querySelector('[data-testid="event-search-error"]').textContent));
  const wanted = await eventRows.last().getAttribute('data-event-id');
  await page.locator(tid('event-search')).fill(wanted);
  await page.locator(tid('event-search-submit')).click();
  await page.locator(`${tid('event-history')}[data-event-id="${wanted}"]`).waitFor();
  const foundId = await page.locator(tid('event-detail-id')).textContent();
  if (foundId !== wanted) throw new Error(`search: got event ${JSON.stringify(foundId)}, want ${wanted}`);
  await page.locator(`${tid('history-table')} ${tid('history-row')}`).first().waitFor();
  await shoot(page, cfg, 'console-event-search');
  await page.locator(tid('history-close')).click();

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

  step('edit the subscription in place');
  await page.locator(tid('detail-edit')).click();
  await page.locator(tid('edit-form')).waitFor();
  await page.locator(tid('edit-title')).fill('e2e subscription, edited');
  await page.locator(tid('edit-endpoint')).fill(`${cfg.endpoint}/edited`);
  await page.locator(tid('edit-event-entityUpdated')).check();
  await page.locator(tid('edit-filter')).fill('{"properties": ');
  let patches = 0;
  const countPatch = (r) => { if (r.method() === 'PATCH') patches++; };
  page.on('request', countPatch);
  await page.locator(tid('edit-submit')).click();
  await page.locator(tid('edit-filter-error')).waitFor({ state: 'visible' });
  await sameField(page, '#edit-filter', '#edit-filter-error', 'invalid filter');
  if (patches !== 0) throw new Error(`invalid filter JSON: got ${patches} PATCH requests, want none`);
  await shoot(page, cfg, 'console-edit');
  const filter = '{"properties": {"entityCreated": {"required": ["sub"]}}}';
  await page.locator(tid('edit-filter')).fill(filter);
  const [patched] = await Promise.all([
    page.waitForResponse((r) => r.request().method() === 'PATCH'),
    page.locator(tid('edit-submit')).click(),
  ]);
  page.off('request', countPatch);
  if (patched.status() !== 200) throw new Error(`edit: got status ${patched.status()} (${await patched.text()}), want 200`);
  const sent = patched.request().postDataJSON();
  const wantSent = { title: 'e2e subscription, edited', endpoint: `${cfg.endpoint}/edited`, events: ['entityCreated', 'entityUpdated'], filter: JSON.parse(filter) };
  if (JSON.stringify(sent) !== JSON.stringify(wantSent)) throw new Error(`edit patch: got ${JSON.stringify(sent)}, want ${JSON.stringify(wantSent)}`);
  await page.locator(`${tid('detail-title')}:text-is("e2e subscription, edited")`).waitFor();
  const shownEndpoint = await page.locator(tid('detail-endpoint')).textContent();
  if (shownEndpoint !== `${cfg.endpoint}/edited`) throw new Error(`edited endpoint: got ${JSON.stringify(shownEndpoint)}`);
  const shownFilter = JSON.parse(await page.locator(tid('detail-filter')).textContent());
  if (JSON.stringify(shownFilter) !== JSON.stringify(JSON.parse(filter))) throw new Error(`edited filter: got ${JSON.stringify(shownFilter)}`);
  const shownEvents = await page.locator(`${tid('detail-events')} .chip`).allTextContents();
  if (shownEvents.join(',') !== 'entityCreated,entityUpdated') throw new Error(`edited events: got ${JSON.stringify(shownEvents)}`);

  step('start an export');
  if (await page.locator(tid('export-start')).isDisabled()) throw new Error('export start: got disabled with failed events to export, want enabled');
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

  step('nothing left to export: Start export is disabled and says why');
  await page.locator(tid('summary-refresh')).click();
  await page.locator(`${tid('export-start')}[data-exportable="0"]`).waitFor();
  if (!(await page.locator(tid('export-start')).isDisabled())) throw new Error('export start: got enabled with 0 exportable, want disabled');
  const reason = page.locator(tid('export-start-reason'));
  await reason.waitFor({ state: 'visible' });
  if (!/Nothing to export/.test(await reason.textContent())) throw new Error(`export start reason: got ${JSON.stringify(await reason.textContent())}`);

  step('enable the subscription again, to redeliver');
  await page.locator(tid('detail-toggle')).click();
  await page.locator(`${tid('detail')}[data-enabled="true"]`).waitFor();

  step('redeliver selected events: one request per event, with a summary');
  await page.locator(tid('event-state-filter')).selectOption('failure');
  await page.waitForFunction(() => {
    const rows = [...document.querySelectorAll('[data-testid="event-row"]')];
    return rows.length > 0 && rows.every((r) => r.dataset.state === 'failure');
  });
  const failedRows = page.locator(`${tid('event-row')}[data-state="failure"]`);
  const failedBefore = await failedRows.count();
  if (failedBefore < 3) throw new Error(`failed events listed: got ${failedBefore}, want the 3 posted`);
  const pick = await failedRows.evaluateAll((rows) => rows.slice(0, 2).map((r) => r.dataset.eventId));
  for (const id of pick) await page.locator(`${tid('event-row')}[data-event-id="${id}"] ${tid('event-select')}`).check();
  const selectedLabel = await page.locator(tid('redeliver-selected')).textContent();
  if (!/Redeliver 2 selected/.test(selectedLabel)) throw new Error(`selection button: got ${JSON.stringify(selectedLabel)}, want "Redeliver 2 selected"`);
  const redelivered = [];
  const countRedeliver = (r) => {
    const m = /\/events\/([0-9a-f-]{36})\/redeliver$/.exec(new URL(r.url()).pathname);
    if (r.method() === 'POST' && m) redelivered.push(m[1]);
  };
  page.on('request', countRedeliver);
  await page.locator(tid('redeliver-selected')).click();
  await page.locator(`${tid('redeliver-selected-result')}[data-queued="2"][data-refused="0"]`).waitFor();
  page.off('request', countRedeliver);
  if ([...redelivered].sort().join() !== [...pick].sort().join()) {
    throw new Error(`redeliver selected: got requests for ${JSON.stringify(redelivered)}, want one for each of ${JSON.stringify(pick)}`);
  }
  step(`redelivered ${pick.length} selected events`);

  step('redeliver a time window: the count it will send first, then the progress');
  const windowStart = '2000-01-01T00:00:00';
  await page.locator(tid('recover-from')).fill(windowStart);
  if (!(await page.locator(tid('recover-start')).isDisabled())) throw new Error('recover start: got enabled before counting, want disabled');
  await page.locator(tid('recover-count')).click();
  const previewEl = page.locator(`${tid('recover-preview')}[data-count]`);
  await previewEl.waitFor();
  const willSend = Number(await previewEl.getAttribute('data-count'));
  if (willSend !== failedBefore - pick.length) throw new Error(`recover preview: got ${willSend}, want the ${failedBefore - pick.length} failed events left`);
  const startLabel = await page.locator(tid('recover-start')).textContent();
  if (!startLabel.includes(String(willSend))) throw new Error(`recover start: got ${JSON.stringify(startLabel)}, want the count in it`);
  const [recovery] = await Promise.all([
    page.waitForResponse((r) => r.request().method() === 'POST' && /\/events\/redeliver$/.test(new URL(r.url()).pathname)),
    page.locator(tid('recover-start')).click(),
  ]);
  if (recovery.status() !== 202) throw new Error(`recover: got status ${recovery.status()} (${await recovery.text()}), want 202`);
  const recoverySent = recovery.request().postDataJSON();
  if (recoverySent.after !== new Date(windowStart).toISOString() || recoverySent.before !== undefined) {
    throw new Error(`recover body: got ${JSON.stringify(recoverySent)}, want after ${new Date(windowStart).toISOString()} only`);
  }
  const progressEl = page.locator(`${tid('recover-progress')}[data-state="completed"]`);
  await progressEl.waitFor();
  const requeued = Number(await progressEl.getAttribute('data-requeued'));
  const matched = Number(await progressEl.getAttribute('data-matched'));
  if (requeued !== willSend || matched !== willSend) throw new Error(`recover progress: got ${requeued} of ${matched}, want ${willSend} of ${willSend}`);
  await page.locator(`${tid('events-empty')}:not([hidden])`).waitFor();
  step(`the window's ${requeued} events were redelivered; no failed event is left`);
  await shoot(page, cfg, 'console-redeliver');
  await page.locator(tid('event-state-filter')).selectOption('');

  await shoot(page, cfg, 'console-detail');

  await page.locator(tid('back-to-list')).click();
  await page.locator(`${tid('sub-list')}[aria-busy="false"]`).waitFor();
  await shoot(page, cfg, 'console-list');

  step('a 1-character title shows the validation error next to the title');
  await page.locator(tid('create-title')).fill('x');
  await page.locator(tid('create-endpoint')).fill(cfg.endpoint);
  await page.locator(tid('create-event-entityCreated')).check();
  await page.locator(tid('create-submit')).click();
  const titleError = page.locator(tid('create-title-error'));
  await titleError.waitFor({ state: 'visible' });
  if (!/2 to 200/.test(await titleError.textContent())) throw new Error(`title error: got ${JSON.stringify(await titleError.textContent())}, want the API's reason`);
  await sameField(page, '#create-title', '#create-title-error', 'title error');
  if (await alert.locator(tid('alert-message')).count() !== 0) throw new Error('validation: got a message at the top of the page, want it only next to the field');
  await shoot(page, cfg, 'console-validation', { fullPage: false });

  step('a title already taken shows the conflict under the title');
  await page.locator(tid('create-title')).fill('e2e subscription, edited');
  await page.locator(tid('create-submit')).click();
  await page.waitForFunction(() => /already exists/.test(document.querySelector('[data-testid="create-title-error"]').textContent));
  await sameField(page, '#create-title', '#create-title-error', 'taken title');

  step('no event types: a warning, then the confirm dialog');
  await page.locator(tid('create-title')).fill('e2e subscription to delete');
  await page.locator(tid('create-event-entityCreated')).uncheck();
  await page.locator(tid('create-events-warning')).waitFor({ state: 'visible' });
  let posts = 0;
  const countPost = (r) => { if (r.method() === 'POST') posts++; };
  page.on('request', countPost);
  await page.locator(tid('create-submit')).click();
  await page.locator(`${tid('confirm-dialog')}[open]`).waitFor();
  await page.locator(tid('confirm-cancel')).click();
  await page.locator(`${tid('confirm-dialog')}:not([open])`).waitFor({ state: 'attached' });
  page.off('request', countPost);
  if (posts !== 0) throw new Error(`no event types, canceled: got ${posts} POST requests, want none`);
  if (await titleError.isVisible()) throw new Error('a new attempt: got the old title error still shown, want it cleared');

  step('delete a subscription through the confirm dialog');
  await page.locator(tid('create-submit')).click();
  await page.locator(`${tid('confirm-dialog')}[open]`).waitFor();
  const [second] = await Promise.all([
    page.waitForResponse((r) => r.request().method() === 'POST' && /\/webhooks\/subscriptions$/.test(new URL(r.url()).pathname)),
    page.locator(tid('confirm-ok')).click(),
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

  await attemptsAndSearch(page, cfg);

  if (problems.length > 0) throw new Error(`page problems:\n  ${problems.join('\n  ')}`);
}

// attemptsAndSearch: a subscription to a listener that answers 500 with a
// body; its events' attempts show the request hookd sent, the decoded
// token and the response with its body; the search finds an event by its
// txn (read from the token) and by its sub, straight to the event.
async function attemptsAndSearch(page, cfg) {
  const tid = (id) => `[data-testid="${id}"]`;
  step('create a subscription to a listener that answers 500 with a body');
  await page.locator(tid('create-title')).fill('e2e failing listener');
  await page.locator(tid('create-endpoint')).fill(cfg.failingEndpoint);
  await page.locator(tid('create-event-entityCreated')).check();
  const [created] = await Promise.all([
    page.waitForResponse((r) => r.request().method() === 'POST' && /\/webhooks\/subscriptions$/.test(new URL(r.url()).pathname)),
    page.locator(tid('create-submit')).click(),
  ]);
  if (created.status() !== 201) throw new Error(`create failing subscription: got status ${created.status()} (${await created.text()}), want 201`);
  const sid = (await created.json()).id;
  process.stdout.write(`READY_FOR_EVENTS ${sid}\n`);
  await waitForStdinLine('EVENTS_DONE', cfg.eventsTimeoutMs);
  await page.locator(`${tid('sub-row')}[data-sub-id="${sid}"] ${tid('sub-open')}`).click();
  await page.locator(`${tid('detail')}[data-sub-id="${sid}"]`).waitFor();

  step('wait for the events to fail after their two attempts');
  const rows = page.locator(tid('event-row'));
  const deadline = Date.now() + 30000;
  for (;;) {
    await page.locator(`${tid('events-refresh')}:not([disabled])`).waitFor();
    const states = await rows.evaluateAll((rs) => rs.map((r) => r.dataset.state));
    if (states.length === 3 && states.every((s) => s === 'failure')) break;
    if (Date.now() > deadline) throw new Error(`failing listener: got event states ${JSON.stringify(states)} after 30 s, want 3 failures`);
    await page.waitForTimeout(500);
    await page.locator(tid('events-refresh')).click();
  }

  step('open an event: its attempts, newest first and open, with the request, token and response body');
  const first = rows.first();
  const eventId = await first.getAttribute('data-event-id');
  await first.locator(tid('event-open')).click();
  const attempts = page.locator(`${tid('event-history')}[data-event-id="${eventId}"] ${tid('attempt')}`);
  await attempts.first().waitFor();
  const numbers = await attempts.evaluateAll((as) => as.map((a) => a.dataset.attempt));
  if (numbers.join(',') !== '2,1') throw new Error(`attempts: got ${JSON.stringify(numbers)}, want 2 then 1 (newest first)`);
  const newest = attempts.first();
  if (!(await newest.evaluate((d) => d.open))) throw new Error('attempts: got the newest closed, want it open');
  if ((await newest.getAttribute('data-status')) !== '500') throw new Error(`newest attempt: got status ${await newest.getAttribute('data-status')}, want 500`);
  const body = await newest.locator(tid('attempt-response-body')).textContent();
  if (!body.includes('database down')) throw new Error(`response body: got ${JSON.stringify(body)}, want the listener's body`);
  const respHeaders = await newest.locator(tid('attempt-response-headers')).textContent();
  if (!respHeaders.includes('X-Listener') || !respHeaders.includes('failing')) throw new Error(`response headers: got ${JSON.stringify(respHeaders)}, want X-Listener: failing`);
  const reqHeaders = await newest.locator(tid('attempt-request-headers')).textContent();
  for (const want of ['Content-Type', 'application/secevent+jwt', 'User-Agent', 'hookd']) {
    if (!reqHeaders.includes(want)) throw new Error(`request headers: got ${JSON.stringify(reqHeaders)}, want ${want} among them`);
  }
  const tokenHeader = JSON.parse(await newest.locator(tid('attempt-token-header')).textContent());
  const claims = JSON.parse(await newest.locator(tid('attempt-token-claims')).textContent());
  if (tokenHeader.typ !== 'secevent+jwt' || !tokenHeader.kid) throw new Error(`token header: got ${JSON.stringify(tokenHeader)}, want typ secevent+jwt and a kid`);
  if (claims.jti !== eventId || JSON.stringify(claims.aud) !== JSON.stringify([cfg.failingEndpoint]) || !claims.txn || !claims.events || !claims.events.entityCreated) {
    throw new Error(`token claims: got ${JSON.stringify(claims)}, want jti ${eventId}, aud [${cfg.failingEndpoint}], a txn and the event`);
  }
  const tokenText = await newest.locator(tid('attempt-token-claims')).textContent();
  if (!tokenText.includes('\n  ')) throw new Error('token claims: want them pretty-printed');
  const duration = await newest.locator(tid('attempt-duration')).textContent();
  if (!/\d\s*(ms|s)$/.test(duration)) throw new Error(`attempt duration: got ${JSON.stringify(duration)}, want a duration`);
  // The older attempt opens on a click and has its own body.
  const older = attempts.nth(1);
  await older.locator(tid('attempt-summary')).click();
  await older.locator(tid('attempt-response-body')).waitFor();
  step(`event ${eventId}: 2 attempts, the body ${JSON.stringify(body)} and the token with txn ${claims.txn}`);
  await shoot(page, cfg, 'console-attempts');
  await page.locator(tid('history-close')).click();

  step('search by txn goes straight to the event');
  await page.locator(tid('event-search')).fill(claims.txn);
  await page.locator(tid('event-search-submit')).click();
  await page.locator(`${tid('event-history')}[data-event-id="${eventId}"]`).waitFor();
  if ((await page.locator(tid('event-detail-id')).textContent()) !== eventId) throw new Error('search by txn: got another event');
  await page.locator(`${tid('event-history')} ${tid('attempt')}`).first().waitFor();
  await shoot(page, cfg, 'console-search-txn');
  await page.locator(tid('history-close')).click();

  step('search by id and by sub go straight to the event');
  const other = await rows.last().getAttribute('data-event-id');
  await page.locator(tid('event-search')).fill(other);
  await page.locator(tid('event-search-submit')).click();
  await page.locator(`${tid('event-history')}[data-event-id="${other}"]`).waitFor();
  await page.locator(tid('history-close')).click();
  const subOf = JSON.parse(await (async () => {
    await rows.first().locator(tid('event-open')).click();
    const el = page.locator(`${tid('event-history')}[data-event-id="${eventId}"] ${tid('attempt-token-claims')}`).first();
    await el.waitFor();
    return el.textContent();
  })()).events.entityCreated.sub;
  await page.locator(tid('history-close')).click();
  await page.locator(tid('event-search')).fill(subOf);
  await page.locator(tid('event-search-submit')).click();
  await page.locator(`${tid('event-history')}[data-event-id="${eventId}"]`).waitFor();
  await page.locator(tid('history-close')).click();
  step(`search by sub ${subOf} found event ${eventId}`);

  step('a search with several matches lists them, until Show all events');
  process.stdout.write(`READY_FOR_SAME_SUB ${sid} shared-user\n`);
  await waitForStdinLine('EVENTS_DONE', cfg.eventsTimeoutMs);
  await page.locator(tid('event-search')).fill('shared-user');
  await page.locator(tid('event-search-submit')).click();
  await page.locator(`${tid('event-search-note')}:not([hidden])`).waitFor();
  const note = await page.locator(tid('event-search-label')).textContent();
  if (!/^2 events with sub shared-user$/.test(note)) throw new Error(`search note: got ${JSON.stringify(note)}, want "2 events with sub shared-user"`);
  await page.waitForFunction(() => document.querySelectorAll('[data-testid="event-row"]').length === 2);
  if (await page.locator(`${tid('event-history')}:not([hidden])`).count() !== 0) throw new Error('several matches: got an event opened, want the list of matches');
  await shoot(page, cfg, 'console-search-matches');
  await page.locator(tid('event-search-clear')).click();
  await page.waitForFunction(() => document.querySelectorAll('[data-testid="event-row"]').length === 5);
  if (!(await page.locator(tid('event-search-note')).isHidden())) throw new Error('Show all events: got the search note still shown');
}

async function main() {
  const cfg = {
    url: need('HOOKD_URL').replace(/\/+$/, ''),
    customer: need('HOOKD_CUSTOMER'),
    clientId: need('HOOKD_CLIENT_ID'),
    clientSecret: need('HOOKD_CLIENT_SECRET'),
    endpoint: need('HOOKD_ENDPOINT'),
    failingEndpoint: need('HOOKD_FAILING_ENDPOINT'),
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
    const context = await browser.newContext({ viewport: desktop, acceptDownloads: true });
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
