// hookd console: redeliver the failed events of a time window (optionally
// of one failure reason). The count it will send is shown first, from the
// event list's total with the same filters; then the recovery's progress,
// asked again every second while it runs, with Cancel.

import * as api from './api.js';
import { h, replace, showError, showNotice, busy, fieldSlot } from './dom.js';

// The failure reason codes the API takes (README, "Why it failed").
const reasonCodes = ['timeout', 'response-too-slow', 'dns', 'connect', 'tls', 'blocked-address', 'redirect',
  'status-4xx', 'status-5xx', 'endpoint-gone', 'subscription-disabled', 'status-1xx', 'internal'];

const pollInterval = 1000;

/** localToRFC3339 turns a datetime-local value (the viewer's time) into UTC RFC 3339, or '' when empty. */
function localToRFC3339(value) {
  if (!value) return '';
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? '' : d.toISOString();
}

const plural = (n, word) => `${n} ${word}${n === 1 ? '' : 's'}`;

/** recoverPanel renders the time-window redelivery of subscription sid; onChange runs when events were queued. */
export function recoverPanel(view, sid, onChange) {
  const from = h('input', { type: 'datetime-local', step: '1', id: 'recover-from', 'data-testid': 'recover-from' });
  const to = h('input', { type: 'datetime-local', step: '1', id: 'recover-to', 'data-testid': 'recover-to' });
  const reason = h('select', { id: 'recover-reason', 'data-testid': 'recover-reason' },
    h('option', { value: '' }, 'Any reason'),
    reasonCodes.map((c) => h('option', { value: c }, c)));
  const rangeSlot = fieldSlot(to, 'recover-range-error');
  const countButton = h('button', { type: 'button', class: 'btn btn-small', 'data-testid': 'recover-count' }, 'Count failed events');
  const preview = h('span', { class: 'action-result', 'data-testid': 'recover-preview', 'aria-live': 'polite' });
  const start = h('button', { type: 'button', class: 'btn', 'data-testid': 'recover-start', disabled: true }, 'Redeliver');
  const progress = h('p', { class: 'muted small', 'data-testid': 'recover-progress', 'aria-live': 'polite', hidden: true });
  const cancel = h('button', { type: 'button', class: 'btn btn-small', 'data-testid': 'recover-cancel', hidden: true }, 'Cancel');
  let counted = null; // the selection the preview counted
  let job = null;
  let timer = null;
  view.onLeave(() => clearTimeout(timer));

  function selection() {
    rangeSlot.clear();
    const sel = {};
    const after = localToRFC3339(from.value);
    const before = localToRFC3339(to.value);
    if (after && before && after >= before) {
      rangeSlot.set('The end of the window must be after its start.');
      return null;
    }
    if (after) sel.after = after;
    if (before) sel.before = before;
    if (reason.value) sel.reason = reason.value;
    return sel;
  }

  function reset() {
    counted = null;
    preview.replaceChildren();
    delete preview.dataset.count;
    start.disabled = true;
    start.textContent = 'Redeliver';
  }

  async function count() {
    reset();
    const sel = selection();
    if (!sel) return;
    const q = new URLSearchParams({ state: 'failure', page: '1', ...sel });
    try {
      const r = await api.call('GET', api.subscriptionPath(sid, `/events?${q}`));
      if (!view.alive) return;
      const n = (r && r.total) || 0;
      counted = sel;
      preview.textContent = n > 0 ? `${plural(n, 'failed event')} will be sent again.` : 'No failed event in this window.';
      preview.dataset.count = String(n);
      start.disabled = n === 0 || Boolean(job && job.state === 'running');
      start.textContent = n > 0 ? `Redeliver ${plural(n, 'event')}` : 'Redeliver';
    } catch (err) {
      if (view.alive) showError(err, 'Count');
    }
  }

  function show(j) {
    job = j;
    const matched = j.matched ?? 0;
    const requeued = j.requeued ?? j.count ?? 0;
    const words = {
      running: `Running: ${requeued} of ${matched} queued so far; the rest follow as the listener keeps up.`,
      completed: `Completed: ${plural(requeued, 'event')} queued for redelivery.`,
      canceled: `Canceled after ${plural(requeued, 'event')} queued; those stay queued.`,
      failed: `Stopped after ${plural(requeued, 'event')} queued: ${j.failureReason || 'it failed'}.`,
    };
    progress.textContent = words[j.state] || j.state;
    progress.hidden = false;
    progress.dataset.state = j.state;
    progress.dataset.requeued = String(requeued);
    progress.dataset.matched = String(matched);
    cancel.hidden = j.state !== 'running';
    if (j.state === 'running') {
      start.disabled = true;
      clearTimeout(timer);
      timer = setTimeout(poll, pollInterval);
    }
  }

  async function poll() {
    if (!view.alive || !job || !job._links) return;
    try {
      const j = await api.call('GET', job._links.self.href);
      if (!view.alive) return;
      show(j);
      if (j.state !== 'running') onChange();
    } catch (err) {
      if (view.alive) showError(err, 'Redelivery progress');
    }
  }

  countButton.addEventListener('click', () => busy(countButton, count));
  for (const el of [from, to, reason]) el.addEventListener('change', reset);
  start.addEventListener('click', () => busy(start, async () => {
    if (!counted) return;
    try {
      const j = await api.call('POST', api.subscriptionPath(sid, '/events/redeliver'), { json: counted });
      if (!view.alive) return;
      show(j);
      showNotice(`${plural(j.requeued ?? j.count ?? 0, 'failed event')} queued for redelivery${j.state === 'running' ? ' so far' : ''}.`);
      reset();
      onChange();
    } catch (err) {
      showError(err, 'Redeliver');
    }
  }));
  cancel.addEventListener('click', () => busy(cancel, async () => {
    try {
      const j = await api.call('DELETE', job._links.self.href);
      if (view.alive) show(j);
      onChange();
    } catch (err) {
      showError(err, 'Cancel');
      poll();
    }
  }));

  const el = h('section', { class: 'panel', 'aria-labelledby': 'recover-heading', 'data-testid': 'recover-panel' },
    h('div', { class: 'panel-head' }, h('h2', { id: 'recover-heading' }, 'Redeliver a time window')),
    h('p', { class: 'help' }, 'Sends again the failed events created in the window (either end may be left open), optionally only those that failed for one reason. Count them first.'),
    h('div', { class: 'filters' },
      h('label', { for: from.id, class: 'inline-label' }, 'From', from),
      h('label', { for: to.id, class: 'inline-label' }, 'To', to),
      h('label', { for: reason.id, class: 'inline-label' }, 'Reason', reason)),
    rangeSlot.el,
    h('div', { class: 'actions' }, countButton, preview, start),
    h('div', { class: 'actions' }, progress, cancel));
  return { el, show };
}
