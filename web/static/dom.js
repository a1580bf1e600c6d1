// hookd console: DOM helpers, messages, the confirm dialog and views.
//
// Every text from the API is set as text, never parsed as HTML.

/**
 * h builds an element. attrs: "class", "text", "on<event>" handlers,
 * boolean properties (hidden, disabled, checked, selected, required), and
 * any other attribute by name (data-*, aria-*, role, ...). Children are
 * nodes, strings, or arrays of them; null and false are skipped.
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === 'class') el.className = value;
    else if (key === 'text') el.textContent = value;
    else if (key.startsWith('on') && typeof value === 'function') el.addEventListener(key.slice(2), value);
    else if (['hidden', 'disabled', 'checked', 'selected', 'required', 'value'].includes(key)) el[key] = value;
    else el.setAttribute(key, value === true ? '' : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** replace empties el and fills it with children. */
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

// Views. A view is what #main shows; leaving it runs its cleanups (timers)
// and marks it dead so late answers do not touch the page.
let current = { alive: false, cleanups: [] };

/** startView ends the current view and returns the context of a new one. */
export function startView() {
  current.alive = false;
  for (const fn of current.cleanups) fn();
  current = {
    alive: true,
    cleanups: [],
    onLeave(fn) {
      this.cleanups.push(fn);
    },
  };
  return current;
}

// Messages.
const alerts = () => document.getElementById('alerts');
const notices = () => document.getElementById('notices');
const maxErrors = 4;
const maxNotices = 2;

function message(area, kind, text, params, dismissAfter) {
  // The same message again replaces the shown one instead of stacking up.
  for (const old of area.children) {
    if (old.dataset.text === text) old.remove();
  }
  const el = h('div', { class: `msg msg-${kind}`, 'data-testid': kind === 'error' ? 'alert-message' : 'notice-message' },
    h('div', { class: 'msg-body' },
      h('p', { class: 'msg-text' }, withTimes(text)),
      params && params.length > 0 && h('ul', { class: 'msg-params' },
        params.map((p) => h('li', { 'data-testid': 'alert-param' },
          h('code', { text: p.name || '(body)' }), `: ${p.reason || 'invalid'}`)))),
    h('button', {
      type: 'button', class: 'msg-close', 'aria-label': 'Dismiss message',
      'data-testid': kind === 'error' ? 'alert-dismiss' : 'notice-dismiss',
      onclick: () => el.remove(),
    }, '×'));
  el.dataset.text = text;
  area.append(el);
  const max = kind === 'error' ? maxErrors : maxNotices;
  while (area.children.length > max) area.firstElementChild.remove();
  if (dismissAfter) setTimeout(() => el.remove(), dismissAfter);
  return el;
}

/** showError shows an error (ApiError, Error or text) in the alert area. */
export function showError(err, prefix) {
  if (err && err.name === 'SessionExpired') return;
  let text = typeof err === 'string' ? err : (err && err.message) || 'Something went wrong';
  if (prefix) text = `${prefix}: ${text}`;
  const el = message(alerts(), 'error', text, err && err.params);
  if (el.getBoundingClientRect().top < 0) el.scrollIntoView({ block: 'nearest' });
}

/** showNotice shows a short-lived success message. */
export function showNotice(text) {
  message(notices(), 'notice', text, null, 6000);
}

/** clearMessages removes every shown message. */
export function clearMessages() {
  alerts().replaceChildren();
  notices().replaceChildren();
}

/**
 * confirmDialog asks in the page's own dialog and resolves to true on
 * confirm. danger styles the confirm button as destructive.
 */
export function confirmDialog(text, okLabel = 'Delete', { title = 'Are you sure?', danger = true } = {}) {
  const dialog = document.getElementById('confirm');
  document.getElementById('confirm-title').textContent = title;
  document.getElementById('confirm-text').textContent = text;
  const ok = document.getElementById('confirm-ok');
  ok.textContent = okLabel;
  ok.className = `btn ${danger ? 'btn-danger' : 'btn-primary'}`;
  dialog.returnValue = '';
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => resolve(dialog.returnValue === 'ok'), { once: true });
    dialog.showModal();
  });
}

const badgeKinds = {
  success: 'ok', completed: 'ok', enabled: 'ok',
  failure: 'bad', failed: 'bad',
  'awaiting-retry': 'warn',
  executing: 'info', 'awaiting-executing': 'info', processing: 'info', writing: 'info', active: 'info',
  canceled: 'muted', disabled: 'muted',
};

/** badge renders a state as a colored label. */
export function badge(state, testid = 'state-badge') {
  const kind = badgeKinds[state] || 'muted';
  return h('span', { class: `badge badge-${kind}`, 'data-testid': testid, 'data-state': state }, state || 'unknown');
}

const timeFormat = new Intl.DateTimeFormat(undefined, {
  year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit',
});
const timeFormatMs = new Intl.DateTimeFormat(undefined, {
  year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit',
  fractionalSecondDigits: 3,
});

/**
 * utcText is an RFC 3339 value as UTC for the tooltip: the API's own text
 * when it is in UTC (it may carry nanoseconds), else the instant in UTC.
 */
function utcText(value, d) {
  const s = String(value);
  const iso = /Z$/i.test(s) ? s : d.toISOString();
  return `${iso.replace('T', ' ').replace(/Z$/i, '')} UTC`;
}

/**
 * time renders an RFC 3339 timestamp in the viewer's local time, with the
 * UTC value as tooltip. ms shows milliseconds.
 */
export function time(value, { ms = false } = {}) {
  if (!value) return h('span', { class: 'muted' }, '—');
  const d = new Date(value);
  if (Number.isNaN(d.getTime())) return h('span', {}, String(value));
  return h('time', { datetime: value, title: utcText(value, d), 'data-testid': 'time' },
    (ms ? timeFormatMs : timeFormat).format(d));
}

const rfc3339 = /\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})/g;

/** withTimes splits a message's text so that the RFC 3339 times in it show in local time. */
export function withTimes(text) {
  const s = String(text);
  const parts = [];
  let last = 0;
  for (const m of s.matchAll(rfc3339)) {
    parts.push(s.slice(last, m.index), time(m[0]));
    last = m.index + m[0].length;
  }
  parts.push(s.slice(last));
  return parts;
}

/** busy disables a button while fn runs and returns fn's result. */
export async function busy(button, fn) {
  button.disabled = true;
  button.setAttribute('aria-busy', 'true');
  try {
    return await fn();
  } finally {
    button.disabled = false;
    button.removeAttribute('aria-busy');
  }
}

/**
 * shortId shows the last 8 hex digits of a UUID. An event id begins with its
 * sequence number (mostly zeros), so its tail is what tells ids apart.
 */
export function shortId(id) {
  return String(id || '').replace(/-/g, '').slice(-8);
}

/**
 * fieldSlot is the place under a form field where its error shows. The
 * control gets aria-invalid and aria-describedby while an error is shown.
 */
export function fieldSlot(control, testid) {
  const id = `${control.id}-error`;
  const el = h('p', { class: 'field-error', id, 'data-testid': testid, role: 'alert', hidden: true });
  return {
    el,
    control,
    set(text) {
      replace(el, withTimes(text));
      el.hidden = false;
      if (control.tagName !== 'BUTTON') control.setAttribute('aria-invalid', 'true');
      const described = (control.getAttribute('aria-describedby') || '').split(' ').filter((x) => x && x !== id);
      control.setAttribute('aria-describedby', [...described, id].join(' '));
    },
    clear() {
      el.hidden = true;
      el.replaceChildren();
      control.removeAttribute('aria-invalid');
      const described = (control.getAttribute('aria-describedby') || '').split(' ').filter((x) => x && x !== id);
      if (described.length) control.setAttribute('aria-describedby', described.join(' '));
      else control.removeAttribute('aria-describedby');
    },
  };
}

/**
 * formErrors shows an error next to the fields it names. slots maps a
 * field name (as the API names it, e.g. "title" or "events") to its slot;
 * general is the slot for the rest (the form's own error line). It
 * returns true when anything was shown there.
 */
export function formErrors(slots, general) {
  const all = [...Object.values(slots), general];
  return {
    clear() {
      for (const s of all) s.clear();
    },
    show(err, prefix) {
      if (err && err.name === 'SessionExpired') return;
      const params = (err && err.params) || [];
      const rest = [];
      let focus = null;
      const byField = new Map();
      for (const p of params) {
        const name = String(p.name || '');
        const key = Object.keys(slots).find((k) => name === k || name.startsWith(`${k}.`) || name.startsWith(`${k}[`) || name.startsWith(`${k}/`));
        if (key) {
          byField.set(key, [...(byField.get(key) || []), p.reason || 'is not valid']);
        } else {
          rest.push(`${name || 'body'}: ${p.reason || 'is not valid'}`);
        }
      }
      for (const [key, reasons] of byField) {
        slots[key].set(reasons.join('; '));
        focus = focus || slots[key].control;
      }
      if (rest.length > 0 || byField.size === 0) {
        let text = typeof err === 'string' ? err : (err && err.message) || 'Something went wrong';
        if (rest.length > 0) text = rest.join('; ');
        general.set(prefix ? `${prefix}: ${text}` : text);
      }
      if (focus) focus.focus();
    },
  };
}
