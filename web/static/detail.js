// hookd console: one subscription: its settings, summary, actions,
// exports, and recent events with their delivery history.

import * as api from './api.js';
import { h, replace, badge, time, showError, showNotice, busy, shortId } from './dom.js';
import { summaryBox, loadSummary, eventChips, enabledSwitch, deleteSubscription } from './subs.js';
import { exportsPanel } from './exports.js';

const eventStates = ['awaiting-executing', 'executing', 'awaiting-retry', 'success', 'failure'];

/** renderDetail shows the subscription sid. */
export async function renderDetail(view, main, sid) {
  const back = h('a', { href: '#/', class: 'back', 'data-testid': 'back-to-list' }, '← Subscriptions');
  replace(main, back, h('div', { class: 'panel loading', 'aria-busy': 'true' }, 'Loading…'));

  let sub;
  try {
    sub = await api.call('GET', api.subscriptionPath(sid));
  } catch (err) {
    if (!view.alive) return;
    showError(err, 'Subscription');
    replace(main, back, h('div', { class: 'panel' }, h('p', {}, 'This subscription could not be loaded.')));
    return;
  }
  if (!view.alive) return;

  const summary = summaryBox('detail-summary');
  const refreshSummary = () => loadSummary(view, sid, summary);
  const events = eventsPanel(view, sid, refreshSummary);
  // A finished export changes the summary and marks its events exported.
  const exportsEl = exportsPanel(view, sid, () => {
    refreshSummary();
    events.reload();
  });
  const head = h('section', { class: 'panel detail-head', 'data-testid': 'detail', 'data-sub-id': sid });

  function renderHead() {
    const testResult = h('span', { class: 'action-result', 'data-testid': 'test-result', 'aria-live': 'polite' });
    const redeliverResult = h('span', { class: 'action-result', 'data-testid': 'redeliver-result', 'aria-live': 'polite' });
    const testButton = h('button', { type: 'button', class: 'btn', 'data-testid': 'test-send' }, 'Send test notification');
    const redeliverButton = h('button', { type: 'button', class: 'btn', 'data-testid': 'redeliver-failed' }, 'Redeliver failed');
    const deleteButton = h('button', { type: 'button', class: 'btn btn-danger-ghost', 'data-testid': 'detail-delete' }, 'Delete');

    testButton.addEventListener('click', () => busy(testButton, async () => {
      testResult.replaceChildren();
      try {
        const r = await api.call('POST', api.subscriptionPath(sid, '/test'));
        const code = r && r.statusCode ? `HTTP ${r.statusCode}` : 'no response';
        replace(testResult, badge(r && r.success ? 'success' : 'failure', 'test-badge'), ` ${code}`);
        testResult.dataset.success = String(Boolean(r && r.success));
      } catch (err) {
        showError(err, 'Test notification');
      }
    }));
    redeliverButton.addEventListener('click', () => busy(redeliverButton, async () => {
      redeliverResult.replaceChildren();
      try {
        const r = await api.call('POST', api.subscriptionPath(sid, '/events/redeliver'));
        const n = (r && r.count) || 0;
        redeliverResult.textContent = `${n} event${n === 1 ? '' : 's'} queued`;
        redeliverResult.dataset.count = String(n);
        showNotice(`${n} failed event${n === 1 ? '' : 's'} queued for redelivery.`);
        refreshSummary();
        events.reload();
      } catch (err) {
        showError(err, 'Redeliver');
      }
    }));
    deleteButton.addEventListener('click', async () => {
      if (await deleteSubscription(sub)) location.hash = '#/';
    });

    replace(head,
      h('div', { class: 'detail-titleline' },
        h('h1', { 'data-testid': 'detail-title' }, sub.title),
        badge(sub.enabled ? 'enabled' : 'disabled', 'sub-state')),
      h('p', { class: 'detail-id mono muted break', 'data-testid': 'detail-id', title: 'Subscription id' }, sub.id),
      h('dl', { class: 'props' },
        h('div', {}, h('dt', {}, 'Endpoint'), h('dd', { class: 'mono break' }, sub.endpoint)),
        h('div', {}, h('dt', {}, 'Events'), h('dd', {}, eventChips(sub.events))),
        sub.filter && h('div', {}, h('dt', {}, 'Filter'),
          h('dd', {}, h('pre', { class: 'mono code' }, JSON.stringify(sub.filter, null, 2)))),
        h('div', {}, h('dt', {}, 'Created'), h('dd', {}, time(sub.createdAt))),
        h('div', {}, h('dt', {}, 'Updated'), h('dd', {}, time(sub.updatedAt)))),
      h('div', { class: 'actions' },
        enabledSwitch(sub, 'detail-toggle', (updated) => {
          sub = updated;
          renderHead();
          refreshSummary();
          events.reload();
        }),
        testButton, testResult, redeliverButton, redeliverResult, deleteButton));
    head.classList.toggle('is-disabled', !sub.enabled);
    head.dataset.enabled = String(Boolean(sub.enabled));
  }
  renderHead();

  const summaryRefresh = h('button', { type: 'button', class: 'btn btn-small', 'data-testid': 'summary-refresh' }, 'Refresh');
  summaryRefresh.addEventListener('click', () => busy(summaryRefresh, refreshSummary));

  replace(main, back, head,
    h('section', { class: 'panel', 'aria-labelledby': 'summary-heading' },
      h('div', { class: 'panel-head' }, h('h2', { id: 'summary-heading' }, 'Summary'),
        h('span', { class: 'muted small' }, 'last 7 days'), summaryRefresh),
      summary.el),
    exportsEl,
    events.el);
  refreshSummary();
}

function eventsPanel(view, sid, refreshSummary) {
  let page = 1;
  let links = {};
  const filter = h('select', { id: 'event-state-filter', 'data-testid': 'event-state-filter' },
    h('option', { value: '' }, 'All states'),
    eventStates.map((s) => h('option', { value: s }, s)));
  const refresh = h('button', { type: 'button', class: 'btn btn-small', 'data-testid': 'events-refresh' }, 'Refresh');
  const body = h('tbody', {});
  const table = h('table', { class: 'table', 'data-testid': 'events-table', hidden: true },
    h('thead', {}, h('tr', {},
      h('th', { scope: 'col' }, 'Event'), h('th', { scope: 'col' }, 'Created'),
      h('th', { scope: 'col' }, 'State'), h('th', { scope: 'col' }, 'Attempts'))),
    body);
  const empty = h('p', { class: 'empty', 'data-testid': 'events-empty', hidden: true }, 'No events.');
  const prev = h('button', { type: 'button', class: 'btn btn-small', 'data-testid': 'events-prev' }, '← Previous');
  const next = h('button', { type: 'button', class: 'btn btn-small', 'data-testid': 'events-next' }, 'Next →');
  const pageLabel = h('span', { class: 'muted small', 'data-testid': 'events-page' });
  const pager = h('div', { class: 'pager', hidden: true }, prev, pageLabel, next);
  const history = h('div', { class: 'history', 'data-testid': 'event-history', hidden: true });

  async function load() {
    const q = new URLSearchParams({ page: String(page) });
    if (filter.value) q.set('state', filter.value);
    body.setAttribute('aria-busy', 'true');
    try {
      const r = await api.call('GET', api.subscriptionPath(sid, `/events?${q}`));
      if (!view.alive) return;
      const list = (r && r._embedded && r._embedded.events) || [];
      links = (r && r._links) || {};
      replace(body, list.map((ev) => eventRow(ev)));
      empty.hidden = list.length > 0;
      table.hidden = list.length === 0;
      prev.disabled = !links.prev && page <= 1;
      next.disabled = !links.next;
      const total = r && Number.isFinite(r.total) ? ` · ${r.total} event${r.total === 1 ? '' : 's'}` : '';
      pageLabel.textContent = `Page ${page}${total}`;
      pager.hidden = page === 1 && !links.next;
    } catch (err) {
      if (view.alive) showError(err, 'Events');
    } finally {
      body.removeAttribute('aria-busy');
    }
  }

  function eventRow(ev) {
    const open = h('button', {
      type: 'button', class: 'linklike mono', 'data-testid': 'event-open',
      'aria-label': `Show history of event ${ev.id}`, title: ev.id,
    }, shortId(ev.id));
    const row = h('tr', { 'data-testid': 'event-row', 'data-event-id': ev.id, 'data-state': ev.state || '' },
      h('td', { 'data-label': 'Event' }, open),
      h('td', { 'data-label': 'Created' }, time(ev.createdAt)),
      h('td', { 'data-label': 'State' }, h('span', {}, badge(ev.state),
        ev.exportedAt && h('span', { class: 'chip chip-exported', 'data-testid': 'event-exported', title: `Exported ${ev.exportedAt}` }, 'exported'))),
      h('td', { 'data-label': 'Attempts' }, String(ev.attempts ?? '—')));
    open.addEventListener('click', () => {
      for (const r of body.querySelectorAll('tr.selected')) r.classList.remove('selected');
      row.classList.add('selected');
      showHistory(ev);
    });
    return row;
  }

  async function showHistory(ev) {
    const close = h('button', { type: 'button', class: 'btn btn-small', 'data-testid': 'history-close' }, 'Close');
    close.addEventListener('click', () => {
      history.hidden = true;
      for (const r of body.querySelectorAll('tr.selected')) r.classList.remove('selected');
    });
    const content = h('div', { 'aria-busy': 'true' }, 'Loading…');
    const redeliverHref = ev._links && ev._links.redeliver && ev._links.redeliver.href;
    const redeliver = ev.state === 'failure' && h('button', { type: 'button', class: 'btn btn-small', 'data-testid': 'event-redeliver' }, 'Redeliver');
    if (redeliver) {
      redeliver.addEventListener('click', () => busy(redeliver, async () => {
        try {
          await api.call('POST', redeliverHref || api.subscriptionPath(sid, `/events/${encodeURIComponent(ev.id)}/redeliver`));
          showNotice('Event queued for redelivery.');
          refreshSummary();
          load();
          history.hidden = true;
        } catch (err) {
          showError(err, 'Redeliver');
        }
      }));
    }
    const response = ev.response && ev.response.statusCode;
    replace(history,
      h('div', { class: 'panel-head' },
        h('h3', {}, 'Event ', h('span', { class: 'mono break' }, ev.id)), redeliver, close),
      h('dl', { class: 'props props-inline' },
        h('div', {}, h('dt', {}, 'State'), h('dd', {}, badge(ev.state))),
        h('div', {}, h('dt', {}, 'Attempts'), h('dd', {}, String(ev.attempts ?? '—'))),
        response && h('div', {}, h('dt', {}, 'Last response'), h('dd', {}, `HTTP ${response}`)),
        ev.exportedAt && h('div', {}, h('dt', {}, 'Exported'), h('dd', {}, time(ev.exportedAt)))),
      content);
    history.hidden = false;
    history.scrollIntoView({ block: 'nearest' });
    const href = ev._links && ev._links.history && ev._links.history.href;
    try {
      const r = await api.call('GET', href || api.subscriptionPath(sid, `/events/${encodeURIComponent(ev.id)}/history`));
      if (!view.alive) return;
      replace(content, historyTable((r && r._embedded && r._embedded.history) || []));
    } catch (err) {
      if (view.alive) {
        replace(content, h('p', { class: 'muted' }, 'History could not be loaded.'));
        showError(err, 'History');
      }
    }
  }

  filter.addEventListener('change', () => {
    page = 1;
    history.hidden = true;
    load();
  });
  refresh.addEventListener('click', () => busy(refresh, load));
  prev.addEventListener('click', () => {
    if (page > 1) page -= 1;
    load();
  });
  next.addEventListener('click', () => {
    page += 1;
    load();
  });

  const el = h('section', { class: 'panel', 'aria-labelledby': 'events-heading' },
    h('div', { class: 'panel-head' },
      h('h2', { id: 'events-heading' }, 'Events'),
      h('label', { for: 'event-state-filter', class: 'inline-label' }, 'State', filter),
      refresh),
    h('div', { class: 'table-wrap' }, table),
    empty,
    pager,
    history);
  load();
  return { el, reload: load };
}

// Known history fields first, in this order; any other field is shown after them.
const historyColumns = [
  ['time', 'Time', ['time', 'at', 'createdAt', 'timestamp']],
  ['attempt', 'Attempt', ['attempt', 'attempts']],
  ['state', 'State', ['state', 'to']],
  ['statusCode', 'Status', ['statusCode', 'status']],
  ['reason', 'Reason', ['reason', 'error', 'message']],
];

function historyTable(rows) {
  if (rows.length === 0) return h('p', { class: 'muted', 'data-testid': 'history-empty' }, 'No history recorded.');
  const used = new Set(['_links']);
  const cols = [];
  for (const [key, label, names] of historyColumns) {
    const present = names.filter((n) => rows.some((r) => r[n] !== undefined && r[n] !== null));
    if (present.length === 0) continue;
    present.forEach((n) => used.add(n));
    cols.push({ key, label, names: present });
  }
  for (const r of rows) {
    for (const k of Object.keys(r)) {
      if (!used.has(k)) {
        used.add(k);
        cols.push({ key: k, label: k, names: [k] });
      }
    }
  }
  const cell = (col, r) => {
    const name = col.names.find((n) => r[n] !== undefined && r[n] !== null);
    const v = name === undefined ? undefined : r[name];
    if (v === undefined) return h('span', { class: 'muted' }, '—');
    if (col.key === 'time') return time(v);
    if (col.key === 'state') return badge(String(v));
    if (typeof v === 'object') return h('code', {}, JSON.stringify(v));
    return String(v);
  };
  return h('div', { class: 'table-wrap' },
    h('table', { class: 'table', 'data-testid': 'history-table' },
      h('thead', {}, h('tr', {}, cols.map((c) => h('th', { scope: 'col' }, c.label)))),
      h('tbody', {}, rows.map((r) => h('tr', { 'data-testid': 'history-row' },
        cols.map((c) => h('td', { 'data-label': c.label }, cell(c, r))))))));
}
