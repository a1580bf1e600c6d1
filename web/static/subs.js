// hookd console: the subscriptions list, the create form, and the pieces
// the detail view shares with it (summary counts, enable switch, delete).

import * as api from './api.js';
import { h, replace, badge, showError, showNotice, confirmDialog, busy } from './dom.js';
import { subscriptionForm } from './subform.js';

const summaryFields = [
  ['total', 'Total'],
  ['succeeded', 'Succeeded'],
  ['retrying', 'Retrying'],
  ['failed', 'Failed'],
  ['exportable', 'Exportable'],
];

/** summaryBox renders the five summary counts; set() fills them in. */
export function summaryBox(testid) {
  const values = {};
  const el = h('dl', { class: 'stats', 'data-testid': testid },
    summaryFields.map(([key, label]) => {
      values[key] = h('dd', { 'data-testid': `summary-${key}` }, '…');
      return h('div', { class: `stat stat-${key}` }, h('dt', {}, label), values[key]);
    }));
  return {
    el,
    set(summary) {
      for (const [key] of summaryFields) {
        const n = summary && Number.isFinite(summary[key]) ? summary[key] : null;
        values[key].textContent = n === null ? '—' : String(n);
        values[key].closest('.stat').classList.toggle('stat-nonzero', n > 0);
      }
      el.dataset.loaded = 'true';
      el.dataset.updatedAt = (summary && summary.updatedAt) || '';
    },
    failed() {
      for (const [key] of summaryFields) values[key].textContent = '—';
    },
  };
}

/** loadSummary fetches a subscription's summary into box. */
export async function loadSummary(view, sid, box) {
  try {
    const summary = await api.call('GET', api.subscriptionPath(sid, '/summary'));
    if (view.alive) box.set(summary);
    return summary;
  } catch (err) {
    if (view.alive) {
      box.failed();
      showError(err, 'Summary');
    }
    return null;
  }
}

/** eventChips lists a subscription's event types. */
export function eventChips(events) {
  if (!events || events.length === 0) return h('span', { class: 'muted small' }, 'no events');
  return h('span', { class: 'chips' }, events.map((e) => h('span', { class: 'chip' }, e)));
}

/** enabledSwitch renders the enable/disable switch; onChange gets the patched subscription. */
export function enabledSwitch(sub, testid, onChange) {
  const label = h('span', { class: 'switch-label' }, sub.enabled ? 'Enabled' : 'Disabled');
  const button = h('button', {
    type: 'button', role: 'switch', class: 'switch', 'data-testid': testid,
    'aria-checked': sub.enabled ? 'true' : 'false', 'aria-label': `Delivery enabled for ${sub.title}`,
    title: sub.enabled ? 'Disable delivery' : 'Enable delivery',
  }, h('span', { class: 'switch-track', 'aria-hidden': 'true' }, h('span', { class: 'switch-knob' })), label);
  button.addEventListener('click', () => busy(button, async () => {
    if (sub.enabled && !(await confirmDisable(sub))) return;
    try {
      const updated = await api.call('PATCH', api.subscriptionPath(sub.id), {
        json: { enabled: !sub.enabled }, contentType: 'application/merge-patch+json',
      });
      showNotice(`${updated.title} is now ${updated.enabled ? 'enabled' : 'disabled'}.`);
      onChange(updated);
    } catch (err) {
      showError(err, sub.enabled ? 'Disable' : 'Enable');
    }
  }));
  return button;
}

/**
 * confirmDisable warns that disabling fails the events still waiting for
 * delivery, with their number when the summary can be read.
 */
async function confirmDisable(sub) {
  let waiting = null;
  try {
    const summary = await api.call('GET', api.subscriptionPath(sub.id, '/summary'));
    if (summary && Number.isFinite(summary.retrying)) waiting = summary.retrying;
  } catch (err) {
    if (err && err.name === 'SessionExpired') return false;
  }
  const what = waiting === null ? 'Events still waiting for delivery or a retry'
    : waiting === 0 ? 'No event is waiting for delivery now; any that arrive before it is disabled'
      : `The ${waiting} event${waiting === 1 ? '' : 's'} waiting for delivery or a retry`;
  return confirmDialog(
    `${what} will be marked failed, and new events will be stored as failed without being sent. ` +
    'Re-enabling sends new events only; failed events can be redelivered or exported.',
    'Disable', { title: `Disable “${sub.title}”?` });
}

/** deleteSubscription asks for confirmation and deletes; it resolves to true when deleted. */
export async function deleteSubscription(sub) {
  const ok = await confirmDialog(
    `Delete “${sub.title}”? Its stored events and exports are deleted too. This cannot be undone.`,
    'Delete subscription');
  if (!ok) return false;
  try {
    await api.call('DELETE', api.subscriptionPath(sub.id));
    showNotice(`Deleted ${sub.title}.`);
    return true;
  } catch (err) {
    showError(err, 'Delete');
    return false;
  }
}

function subCard(view, sub, onDeleted) {
  const summary = summaryBox('sub-summary');
  const card = h('li', {
    class: `sub-card${sub.enabled ? '' : ' is-disabled'}`, 'data-testid': 'sub-row',
    'data-sub-id': sub.id, 'data-enabled': String(Boolean(sub.enabled)),
  },
  h('div', { class: 'sub-main' },
    h('div', { class: 'sub-titleline' },
      h('a', { class: 'sub-title', href: `#/subscriptions/${encodeURIComponent(sub.id)}`, 'data-testid': 'sub-open' }, sub.title),
      badge(sub.enabled ? 'enabled' : 'disabled', 'sub-state')),
    h('div', { class: 'sub-endpoint mono', title: sub.endpoint }, sub.endpoint),
    eventChips(sub.events)),
  summary.el,
  h('div', { class: 'sub-actions' },
    enabledSwitch(sub, 'sub-toggle', (updated) => {
      const fresh = subCard(view, updated, onDeleted);
      card.replaceWith(fresh);
    }),
    h('button', {
      type: 'button', class: 'btn btn-danger-ghost btn-small', 'data-testid': 'sub-delete',
      'aria-label': `Delete ${sub.title}`,
      onclick: async () => {
        if (await deleteSubscription(sub)) {
          card.remove();
          onDeleted();
        }
      },
    }, 'Delete')));
  loadSummary(view, sub.id, summary);
  return card;
}

/** renderList shows the subscriptions with their summaries and the create form. */
export function renderList(view, main) {
  const list = h('ul', { class: 'sub-list', 'data-testid': 'sub-list', 'aria-busy': 'true' });
  const count = h('span', { class: 'count', 'data-testid': 'sub-count' });
  const refresh = h('button', { type: 'button', class: 'btn btn-small', 'data-testid': 'list-refresh' }, 'Refresh');

  function setCount() {
    const n = list.querySelectorAll('[data-testid="sub-row"]').length;
    count.textContent = String(n);
    if (n === 0 && !list.querySelector('.empty')) {
      list.append(h('li', { class: 'empty', 'data-testid': 'sub-empty' },
        'No subscriptions yet. Create one to start receiving notifications.'));
    }
  }

  async function load() {
    list.setAttribute('aria-busy', 'true');
    try {
      const body = await api.call('GET', api.webhooksPath('/subscriptions'));
      if (!view.alive) return;
      const subs = (body && body._embedded && body._embedded.subscriptions) || [];
      replace(list, subs.map((sub) => subCard(view, sub, setCount)));
      setCount();
    } catch (err) {
      if (view.alive) showError(err, 'Subscriptions');
    } finally {
      list.setAttribute('aria-busy', 'false');
    }
  }

  refresh.addEventListener('click', () => busy(refresh, load));
  replace(main,
    h('div', { class: 'page-head' }, h('h1', {}, 'Subscriptions ', count), refresh),
    h('div', { class: 'layout-list' },
      h('section', { class: 'list-col', 'aria-label': 'Subscriptions' }, list),
      createForm(load)));
  load();
}

function createForm(onCreated) {
  const f = subscriptionForm({
    prefix: 'create',
    submitLabel: 'Create subscription',
    async onSubmit(fields) {
      const body = { ...fields };
      if (body.filter === null) delete body.filter;
      const created = await api.call('POST', api.webhooksPath('/subscriptions'), { json: body });
      showNotice(`Created ${created.title}.`);
      f.reset();
      await onCreated(created);
    },
  });
  return h('aside', { class: 'panel create', 'aria-labelledby': 'create-heading' },
    h('h2', { id: 'create-heading' }, 'New subscription'), f.form);
}
