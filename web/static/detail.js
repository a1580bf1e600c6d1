// hookd console: one subscription: its settings (edited in place),
// summary, actions, exports, and its events.

import * as api from './api.js';
import { h, replace, badge, time, showError, showNotice, busy } from './dom.js';
import { summaryBox, loadSummary, eventChips, enabledSwitch, deleteSubscription } from './subs.js';
import { subscriptionForm } from './subform.js';
import { exportsPanel } from './exports.js';
import { eventsPanel } from './events.js';
import { timelinePanel } from './chart.js';
import { recoverPanel } from './recover.js';

/**
 * mergePatch is the RFC 7396 patch that turns sub into fields: only the
 * members that changed, and "filter": null to remove a filter.
 */
function mergePatch(sub, fields) {
  const patch = {};
  if (fields.title !== sub.title) patch.title = fields.title;
  if (fields.endpoint !== sub.endpoint) patch.endpoint = fields.endpoint;
  const before = [...(sub.events || [])].sort().join(',');
  if ([...fields.events].sort().join(',') !== before) patch.events = fields.events;
  if (JSON.stringify(fields.filter ?? null) !== JSON.stringify(sub.filter ?? null)) patch.filter = fields.filter;
  return patch;
}

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
  let exportsCtl = null;
  // The exports panel needs the exportable count to guard its start button.
  const refreshSummary = async () => {
    const s = await loadSummary(view, sid, summary);
    if (s && exportsCtl) exportsCtl.setExportable(s.exportable);
    return s;
  };
  const events = eventsPanel(view, sid, refreshSummary);
  // A finished export changes the summary and marks its events exported.
  exportsCtl = exportsPanel(view, sid, () => {
    refreshSummary();
    events.reload();
  });
  const exportsEl = exportsCtl.el;
  const recover = recoverPanel(view, sid, () => {
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
    const editButton = h('button', { type: 'button', class: 'btn btn-small', 'data-testid': 'detail-edit' }, 'Edit');
    editButton.addEventListener('click', renderEditor);

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
        const running = r && r.state === 'running';
        redeliverResult.textContent = `${n} event${n === 1 ? '' : 's'} queued${running ? ' so far' : ''}`;
        redeliverResult.dataset.count = String(n);
        if (r) recover.show(r); // the progress of a large one
        showNotice(`${n} failed event${n === 1 ? '' : 's'} queued for redelivery${running ? ' so far; the rest follow' : ''}.`);
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
        badge(sub.enabled ? 'enabled' : 'disabled', 'sub-state'),
        editButton),
      h('p', { class: 'detail-id mono muted break', 'data-testid': 'detail-id', title: 'Subscription id' }, sub.id),
      h('dl', { class: 'props' },
        h('div', {}, h('dt', {}, 'Endpoint'), h('dd', { class: 'mono break', 'data-testid': 'detail-endpoint' }, sub.endpoint)),
        h('div', {}, h('dt', {}, 'Events'), h('dd', { 'data-testid': 'detail-events' }, eventChips(sub.events))),
        sub.filter && h('div', { class: 'prop-wide' }, h('dt', {}, 'Filter'),
          h('dd', {}, h('pre', { class: 'mono code', 'data-testid': 'detail-filter' }, JSON.stringify(sub.filter, null, 2)))),
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
    delete head.dataset.editing;
  }

  // renderEditor turns the settings into the form, in place; saving sends
  // only what changed as a merge patch.
  function renderEditor() {
    const f = subscriptionForm({
      prefix: 'edit',
      sub,
      submitLabel: 'Save changes',
      onCancel: renderHead,
      async onSubmit(fields) {
        const patch = mergePatch(sub, fields);
        if (Object.keys(patch).length === 0) {
          showNotice('Nothing changed.');
          renderHead();
          return;
        }
        const updated = await api.call('PATCH', api.subscriptionPath(sid), {
          json: patch, contentType: 'application/merge-patch+json',
        });
        if (!view.alive) return;
        sub = updated;
        showNotice(`Saved ${updated.title}.`);
        renderHead();
      },
    });
    replace(head,
      h('div', { class: 'detail-titleline' }, h('h1', {}, 'Edit subscription'), badge(sub.enabled ? 'enabled' : 'disabled', 'sub-state')),
      h('p', { class: 'detail-id mono muted break', title: 'Subscription id' }, sub.id),
      h('p', { class: 'help' }, 'A new endpoint applies to new events; events already recorded go to the endpoint they were recorded with.'),
      f.form);
    head.dataset.editing = 'true';
    f.form.querySelector('input').focus();
  }
  renderHead();

  const summaryRefresh = h('button', { type: 'button', class: 'btn btn-small', 'data-testid': 'summary-refresh' }, 'Refresh');
  summaryRefresh.addEventListener('click', () => busy(summaryRefresh, refreshSummary));

  replace(main, back, head,
    h('section', { class: 'panel', 'aria-labelledby': 'summary-heading' },
      h('div', { class: 'panel-head' }, h('h2', { id: 'summary-heading' }, 'Summary'),
        h('span', { class: 'muted small' }, 'last 7 days'), summaryRefresh),
      summary.el),
    timelinePanel(view, sid).el,
    exportsEl,
    events.el,
    recover.el);
  refreshSummary();
}

