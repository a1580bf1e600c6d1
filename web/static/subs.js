// hookd console: the subscriptions list, the create form, and the pieces
// the detail view shares with it (summary counts, enable switch, delete).

import * as api from './api.js';
import { h, replace, badge, showError, showNotice, confirmDialog, busy } from './dom.js';

/** eventTypes are the entity events a subscription can ask for. */
export const eventTypes = ['entityCreated', 'entityUpdated', 'entityDeleted'];

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
  const title = h('input', { id: 'create-title', name: 'title', 'data-testid': 'create-title', required: true, maxlength: '200', autocomplete: 'off' });
  const endpoint = h('input', {
    id: 'create-endpoint', name: 'endpoint', type: 'url', 'data-testid': 'create-endpoint', required: true,
    placeholder: 'https://listener.example.com/hooks', autocomplete: 'off', spellcheck: 'false',
  });
  const boxes = eventTypes.map((type) => h('input', {
    type: 'checkbox', id: `create-event-${type}`, name: 'events', value: type, 'data-testid': `create-event-${type}`,
  }));
  const enabled = h('input', { type: 'checkbox', id: 'create-enabled', name: 'enabled', checked: true, 'data-testid': 'create-enabled' });
  const filter = h('textarea', {
    id: 'create-filter', name: 'filter', rows: '4', class: 'mono', 'data-testid': 'create-filter', spellcheck: 'false',
    placeholder: '{"properties": {"entityUpdated": {"properties": {"entityType": {"const": "user"}}}}}',
    'aria-describedby': 'create-filter-help',
  });
  const submit = h('button', { type: 'submit', class: 'btn btn-primary btn-block', 'data-testid': 'create-submit' }, 'Create subscription');

  const form = h('form', { class: 'form', 'data-testid': 'create-form' },
    h('div', { class: 'field' }, h('label', { for: 'create-title' }, 'Title'), title),
    h('div', { class: 'field' }, h('label', { for: 'create-endpoint' }, 'Endpoint URL'), endpoint),
    h('fieldset', { class: 'field checks' },
      h('legend', {}, 'Events'),
      boxes.map((box) => h('label', { class: 'check', for: box.id }, box, box.value))),
    h('div', { class: 'field' }, h('label', { class: 'check', for: 'create-enabled' }, enabled, 'Enabled')),
    h('div', { class: 'field' },
      h('label', { for: 'create-filter' }, 'Filter ', h('span', { class: 'muted' }, '(optional)')),
      filter,
      h('p', { id: 'create-filter-help', class: 'help' },
        'A JSON Schema (draft-07) matched against {"<event type>": <event>}. Events it rejects are not recorded.')),
    submit);

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const body = {
      title: title.value,
      endpoint: endpoint.value.trim(),
      events: boxes.filter((b) => b.checked).map((b) => b.value),
      enabled: enabled.checked,
    };
    const text = filter.value.trim();
    if (text) {
      try {
        body.filter = JSON.parse(text);
      } catch (err) {
        showError(`Filter: not valid JSON (${err.message})`);
        filter.focus();
        return;
      }
      if (!body.filter || typeof body.filter !== 'object' || Array.isArray(body.filter)) {
        showError('Filter: must be a JSON object (a JSON Schema)');
        filter.focus();
        return;
      }
    }
    await busy(submit, async () => {
      try {
        const created = await api.call('POST', api.webhooksPath('/subscriptions'), { json: body });
        showNotice(`Created ${created.title}.`);
        form.reset();
        enabled.checked = true;
        await onCreated(created);
      } catch (err) {
        showError(err, 'Create subscription');
      }
    });
  });

  return h('aside', { class: 'panel create', 'aria-labelledby': 'create-heading' },
    h('h2', { id: 'create-heading' }, 'New subscription'), form);
}
