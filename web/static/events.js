// hookd console: a subscription's events: the list (newest first, or
// oldest first), its filters (state, type, a time range), the search by
// event id, txn or sub, the redelivery of the failed events selected in
// the list, and one event with its attempts and delivery history.

import * as api from './api.js';
import { h, replace, badge, time, showError, showNotice, busy, shortId, fieldSlot } from './dom.js';
import { eventTypes } from './subform.js';
import { attemptsList } from './attempts.js';

const eventStates = ['awaiting-executing', 'executing', 'awaiting-retry', 'success', 'failure'];
const uuidPattern = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;

/** localToRFC3339 turns a datetime-local value (the viewer's time) into UTC RFC 3339, or '' when empty. */
function localToRFC3339(value) {
  if (!value) return '';
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? '' : d.toISOString();
}

/** eventsPanel renders subscription sid's events; reload() reads the current page again. */
export function eventsPanel(view, sid, refreshSummary) {
  let page = 1;
  let links = {};
  let newestFirst = true;
  // The list's search, while it shows the matches of one: {kind: 'txn'|'sub', value}.
  let searching = null;

  const stateFilter = h('select', { id: 'event-state-filter', 'data-testid': 'event-state-filter' },
    h('option', { value: '' }, 'All states'),
    eventStates.map((s) => h('option', { value: s }, s)));
  const typeFilter = h('select', { id: 'event-type-filter', 'data-testid': 'event-type-filter' },
    h('option', { value: '' }, 'All types'),
    eventTypes.map((t) => h('option', { value: t }, t)));
  const from = h('input', { type: 'datetime-local', step: '1', id: 'event-from', 'data-testid': 'event-from' });
  const to = h('input', { type: 'datetime-local', step: '1', id: 'event-to', 'data-testid': 'event-to' });
  const order = h('button', {
    type: 'button', class: 'btn btn-small', 'data-testid': 'events-order', 'aria-pressed': 'false',
    title: 'Show the oldest events first',
  }, '↓ Newest first');
  const refresh = h('button', { type: 'button', class: 'btn btn-small', 'data-testid': 'events-refresh' }, 'Refresh');
  const rangeSlot = fieldSlot(to, 'event-range-error');

  const search = h('input', {
    id: 'event-search', type: 'search', class: 'mono', 'data-testid': 'event-search', spellcheck: 'false',
    autocomplete: 'off', placeholder: 'Event id, txn or sub', 'aria-label': 'Find events by event id, txn or sub',
    maxlength: '1024',
  });
  const searchButton = h('button', { type: 'submit', class: 'btn btn-small', 'data-testid': 'event-search-submit' }, 'Find');
  const searchSlot = fieldSlot(search, 'event-search-error');
  const searchForm = h('form', { class: 'search', role: 'search', 'data-testid': 'event-search-form', novalidate: true },
    h('div', { class: 'search-row' }, search, searchButton), searchSlot.el);
  const searchClear = h('button', { type: 'button', class: 'btn btn-small', 'data-testid': 'event-search-clear' }, 'Show all events');
  const searchLabel = h('span', { 'data-testid': 'event-search-label' });
  const searchNote = h('div', { class: 'search-note', 'data-testid': 'event-search-note', hidden: true }, searchLabel, searchClear);

  const body = h('tbody', {});
  // Failed events can be selected and redelivered together, one request each.
  const selected = new Set();
  const selectAll = h('input', {
    type: 'checkbox', 'data-testid': 'events-select-all', 'aria-label': 'Select every failed event on this page',
  });
  const redeliverSelected = h('button', {
    type: 'button', class: 'btn btn-small', 'data-testid': 'redeliver-selected', disabled: true,
  }, 'Redeliver selected');
  const selectedResult = h('span', { class: 'action-result', 'data-testid': 'redeliver-selected-result', 'aria-live': 'polite' });
  const selectionBar = h('div', { class: 'actions selection-bar' }, redeliverSelected, selectedResult);
  function selectionChanged() {
    redeliverSelected.disabled = selected.size === 0;
    redeliverSelected.textContent = selected.size > 0 ? `Redeliver ${selected.size} selected` : 'Redeliver selected';
    const boxes = [...body.querySelectorAll('input[data-testid="event-select"]')];
    selectAll.checked = boxes.length > 0 && boxes.every((b) => b.checked);
    selectAll.disabled = boxes.length === 0;
  }
  selectAll.addEventListener('change', () => {
    for (const box of body.querySelectorAll('input[data-testid="event-select"]')) {
      box.checked = selectAll.checked;
      if (box.checked) selected.add(box.value);
      else selected.delete(box.value);
    }
    selectionChanged();
  });
  redeliverSelected.addEventListener('click', () => busy(redeliverSelected, async () => {
    const ids = [...selected];
    let queued = 0;
    const refused = [];
    for (const id of ids) {
      try {
        await api.call('POST', api.subscriptionPath(sid, `/events/${encodeURIComponent(id)}/redeliver`));
        queued += 1;
      } catch (err) {
        if (err.name === 'SessionExpired') return;
        refused.push(`${shortId(id)}: ${err.details || err.message}`);
      }
    }
    if (!view.alive) return;
    const text = `${queued} of ${ids.length} queued for redelivery` + (refused.length ? `; ${refused.length} refused (${refused.join('; ')})` : '');
    selectedResult.textContent = text;
    selectedResult.dataset.queued = String(queued);
    selectedResult.dataset.refused = String(refused.length);
    if (refused.length) showError(new Error(text), 'Redeliver selected');
    else showNotice(`${queued} selected event${queued === 1 ? '' : 's'} queued for redelivery.`);
    refreshSummary();
    load();
  }));
  const table = h('table', { class: 'table', 'data-testid': 'events-table', hidden: true },
    h('thead', {}, h('tr', {},
      h('th', { scope: 'col', class: 'select-col' }, selectAll),
      h('th', { scope: 'col' }, 'Event'), h('th', { scope: 'col' }, 'Type'), h('th', { scope: 'col' }, 'Created'),
      h('th', { scope: 'col' }, 'State'), h('th', { scope: 'col' }, 'Attempts'))),
    body);
  const empty = h('p', { class: 'empty', 'data-testid': 'events-empty', hidden: true }, 'No events.');
  const prev = h('button', { type: 'button', class: 'btn btn-small', 'data-testid': 'events-prev' }, '← Previous');
  const next = h('button', { type: 'button', class: 'btn btn-small', 'data-testid': 'events-next' }, 'Next →');
  const pageLabel = h('span', { class: 'muted small', 'data-testid': 'events-page' });
  const pager = h('div', { class: 'pager', hidden: true }, prev, pageLabel, next);
  const detail = h('div', { class: 'history', 'data-testid': 'event-history', hidden: true });

  async function load() {
    rangeSlot.clear();
    const q = new URLSearchParams({ page: String(page), order: newestFirst ? 'desc' : 'asc' });
    if (stateFilter.value) q.set('state', stateFilter.value);
    if (typeFilter.value) q.set('type', typeFilter.value);
    const after = localToRFC3339(from.value);
    const before = localToRFC3339(to.value);
    if (after && before && after >= before) {
      rangeSlot.set('The end of the range must be after its start.');
      return;
    }
    if (after) q.set('after', after);
    if (before) q.set('before', before);
    if (searching) q.set(searching.kind, searching.value);
    body.setAttribute('aria-busy', 'true');
    try {
      const r = await api.call('GET', api.subscriptionPath(sid, `/events?${q}`));
      if (!view.alive) return;
      const list = (r && r._embedded && r._embedded.events) || [];
      links = (r && r._links) || {};
      selected.clear();
      replace(body, list.map((ev) => eventRow(ev)));
      selectionChanged();
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

  function unselect() {
    for (const r of body.querySelectorAll('tr.selected')) r.classList.remove('selected');
  }

  function eventRow(ev) {
    const open = h('button', {
      type: 'button', class: 'linklike mono', 'data-testid': 'event-open',
      'aria-label': `Show event ${ev.id}`, title: ev.id,
    }, shortId(ev.id));
    const box = ev.state === 'failure' && h('input', {
      type: 'checkbox', 'data-testid': 'event-select', value: ev.id, 'aria-label': `Select event ${ev.id}`,
    });
    if (box) {
      box.addEventListener('change', () => {
        if (box.checked) selected.add(ev.id);
        else selected.delete(ev.id);
        selectionChanged();
      });
    }
    const row = h('tr', {
      'data-testid': 'event-row', 'data-event-id': ev.id, 'data-state': ev.state || '', 'data-type': ev.type || '',
      'data-created-at': ev.createdAt || '',
    },
    h('td', { 'data-label': box ? 'Select' : '', class: 'select-col' }, box),
    h('td', { 'data-label': 'Event' }, open),
    h('td', { 'data-label': 'Type', 'data-testid': 'event-type' }, ev.type || '—'),
    h('td', { 'data-label': 'Created' }, time(ev.createdAt, { ms: true })),
    h('td', { 'data-label': 'State' }, h('span', {}, badge(ev.state),
      ev.exportedAt && h('span', { class: 'chip chip-exported', 'data-testid': 'event-exported', title: `Exported ${ev.exportedAt}` }, 'exported'))),
    h('td', { 'data-label': 'Attempts' }, String(ev.attempts ?? '—')));
    open.addEventListener('click', () => {
      unselect();
      row.classList.add('selected');
      showEvent(ev);
    });
    return row;
  }

  async function showEvent(ev) {
    const close = h('button', { type: 'button', class: 'btn btn-small', 'data-testid': 'history-close' }, 'Close');
    close.addEventListener('click', () => {
      detail.hidden = true;
      unselect();
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
          detail.hidden = true;
        } catch (err) {
          showError(err, 'Redeliver');
        }
      }));
    }
    const response = ev.response && ev.response.statusCode;
    replace(detail,
      h('div', { class: 'panel-head' },
        h('h3', {}, 'Event ', h('span', { class: 'mono break', 'data-testid': 'event-detail-id' }, ev.id)), redeliver, close),
      h('dl', { class: 'props props-inline' },
        h('div', {}, h('dt', {}, 'Type'), h('dd', { 'data-testid': 'event-detail-type' }, ev.type || '—')),
        h('div', {}, h('dt', {}, 'State'), h('dd', {}, badge(ev.state))),
        h('div', {}, h('dt', {}, 'Created'), h('dd', {}, time(ev.createdAt, { ms: true }))),
        h('div', {}, h('dt', {}, 'Attempts'), h('dd', {}, String(ev.attempts ?? '—'))),
        response && h('div', {}, h('dt', {}, 'Last response'), h('dd', {}, `HTTP ${response}`)),
        ev.exportedAt && h('div', {}, h('dt', {}, 'Exported'), h('dd', {}, time(ev.exportedAt)))),
      content);
    detail.dataset.eventId = ev.id;
    detail.hidden = false;
    detail.scrollIntoView({ block: 'nearest' });
    const path = (rel) => api.subscriptionPath(sid, `/events/${encodeURIComponent(ev.id)}/${rel}`);
    const link = (rel) => (ev._links && ev._links[rel] && ev._links[rel].href) || path(rel);
    const [attempts, history] = await Promise.allSettled([api.call('GET', link('attempts')), api.call('GET', link('history'))]);
    if (!view.alive || detail.dataset.eventId !== ev.id) return;
    const parts = [h('h4', {}, 'Attempts')];
    if (attempts.status === 'fulfilled') {
      const r = attempts.value;
      parts.push(attemptsList((r && r._embedded && r._embedded.attempts) || []));
    } else {
      parts.push(h('p', { class: 'muted' }, 'Attempts could not be loaded.'));
      showError(attempts.reason, 'Attempts');
    }
    parts.push(h('h4', {}, 'History'));
    if (history.status === 'fulfilled') {
      const r = history.value;
      parts.push(historyTable((r && r._embedded && r._embedded.history) || []));
    } else {
      parts.push(h('p', { class: 'muted' }, 'History could not be loaded.'));
      showError(history.reason, 'History');
    }
    content.removeAttribute('aria-busy');
    replace(content, ...parts);
  }

  // findEvents lists the events of this subscription with txn or sub
  // value; null when none.
  async function findEvents(kind, value) {
    const q = new URLSearchParams({ [kind]: value, order: 'desc' });
    const r = await api.call('GET', api.subscriptionPath(sid, `/events?${q}`));
    const list = (r && r._embedded && r._embedded.events) || [];
    return list.length > 0 ? { kind, value, list, total: r.total } : null;
  }

  // showMatches puts the list in search mode: the matches of one search.
  function showMatches(m) {
    searching = { kind: m.kind, value: m.value };
    searchLabel.textContent = `${m.total} event${m.total === 1 ? '' : 's'} with ${m.kind} ${m.value}`;
    searchNote.hidden = false;
    page = 1;
    detail.hidden = true;
    load();
  }
  searchClear.addEventListener('click', () => {
    searching = null;
    searchNote.hidden = true;
    search.value = '';
    page = 1;
    detail.hidden = true;
    load();
  });

  // The search box takes an event id, a txn or a sub: a UUID is looked
  // up as an event id first, then as a txn, then as a sub; anything else
  // as a sub. One match opens the event; several are listed.
  searchForm.addEventListener('submit', (ev) => {
    ev.preventDefault();
    searchSlot.clear();
    const value = search.value.trim();
    if (!value) {
      searchSlot.set('Enter an event id, a txn or a sub.');
      search.focus();
      return;
    }
    busy(searchButton, async () => {
      let found = null;
      let matches = null;
      try {
        if (uuidPattern.test(value)) {
          try {
            found = await api.call('GET', api.subscriptionPath(sid, `/events/${encodeURIComponent(value)}`));
          } catch (err) {
            if (err.status !== 404) throw err;
          }
          if (!found) matches = await findEvents('txn', value);
        }
        if (!found && !matches) matches = await findEvents('sub', value);
      } catch (err) {
        if (!view.alive) return;
        searchSlot.set(`Search failed: ${err.details || err.message}`);
        return;
      }
      if (!view.alive) return;
      if (!found && !matches) {
        searchSlot.set('No event of this subscription has this id, txn or sub (events are kept 7 days).');
        return;
      }
      if (!found && matches.total === 1) found = matches.list[0];
      if (found) {
        unselect();
        const row = body.querySelector(`tr[data-event-id="${found.id}"]`);
        if (row) row.classList.add('selected');
        showEvent(found);
        return;
      }
      showMatches(matches);
    });
  });

  const reload = () => {
    page = 1;
    detail.hidden = true;
    load();
  };
  for (const el of [stateFilter, typeFilter, from, to]) el.addEventListener('change', reload);
  order.addEventListener('click', () => {
    newestFirst = !newestFirst;
    order.textContent = newestFirst ? '↓ Newest first' : '↑ Oldest first';
    order.title = newestFirst ? 'Show the oldest events first' : 'Show the newest events first';
    order.setAttribute('aria-pressed', String(!newestFirst));
    reload();
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
      order,
      refresh),
    searchForm,
    searchNote,
    h('div', { class: 'filters' },
      h('label', { for: stateFilter.id, class: 'inline-label' }, 'State', stateFilter),
      h('label', { for: typeFilter.id, class: 'inline-label' }, 'Type', typeFilter),
      h('label', { for: from.id, class: 'inline-label' }, 'From', from),
      h('label', { for: to.id, class: 'inline-label' }, 'To', to)),
    rangeSlot.el,
    detail,
    selectionBar,
    h('div', { class: 'table-wrap' }, table),
    empty,
    pager);
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
    if (col.key === 'time') return time(v, { ms: true });
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
