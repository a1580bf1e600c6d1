// hookd console: an event's delivery attempts, newest first, each one
// expandable: the request hookd sent (headers and the decoded token) and
// the listener's response (status, headers, the first 4 KiB of the body).

import { h, badge, time } from './dom.js';

/** duration renders milliseconds as ms or s. */
function duration(ms) {
  if (typeof ms !== 'number') return '—';
  return ms < 1000 ? `${ms.toFixed(ms < 10 ? 1 : 0)} ms` : `${(ms / 1000).toFixed(2)} s`;
}

/** headerList renders headers as a definition list, sorted by name. */
function headerList(headers, testid) {
  const names = Object.keys(headers || {}).sort();
  if (names.length === 0) return h('p', { class: 'muted small', 'data-testid': testid }, 'No headers.');
  return h('dl', { class: 'headers mono', 'data-testid': testid },
    names.map((n) => h('div', {}, h('dt', {}, n), h('dd', { class: 'break' }, headers[n]))));
}

/** pretty is JSON pretty-printed. */
function pretty(v) {
  return JSON.stringify(v, null, 2);
}

function section(title, ...children) {
  return h('div', { class: 'attempt-part' }, h('h5', {}, title), ...children);
}

function responsePart(a) {
  const r = a.response;
  if (!r) {
    return section('Response', h('p', { class: 'muted', 'data-testid': 'attempt-no-response' },
      `No response${a.reason ? `: ${a.reason}` : ''}.`));
  }
  const parts = [h('p', { 'data-testid': 'attempt-response-status' }, h('strong', {}, `HTTP ${r.statusCode}`))];
  if (!r.kept) {
    parts.push(h('p', { class: 'muted small', 'data-testid': 'attempt-not-kept' },
      'Headers and body are kept for the last 3 attempts that had a response worth keeping.'));
    return section('Response', ...parts);
  }
  parts.push(h('h6', {}, 'Headers'), headerList(r.headers, 'attempt-response-headers'));
  parts.push(h('h6', {}, 'Body', h('span', { class: 'muted small' }, ' (first 4 KiB)')));
  if (!r.body) {
    parts.push(h('p', { class: 'muted small', 'data-testid': 'attempt-response-body-empty' }, 'Empty.'));
  } else {
    const note = r.bodyEncoding === 'base64' ? h('p', { class: 'muted small' }, 'Not text: shown as base64.') : null;
    parts.push(note, h('pre', { class: 'mono code body', 'data-testid': 'attempt-response-body' }, r.body));
  }
  return section('Response', ...parts);
}

function requestPart(a) {
  const req = a.request || {};
  const tok = req.token;
  return section('Request',
    h('p', { class: 'mono break' }, `${req.method || 'POST'} ${a.endpoint}`),
    h('h6', {}, 'Headers'), headerList(req.headers, 'attempt-request-headers'),
    h('h6', {}, 'Token'),
    tok
      ? h('div', { class: 'token' },
        h('p', { class: 'muted small' }, 'Header'),
        h('pre', { class: 'mono code', 'data-testid': 'attempt-token-header' }, pretty(tok.header)),
        h('p', { class: 'muted small' }, 'Claims'),
        h('pre', { class: 'mono code', 'data-testid': 'attempt-token-claims' }, pretty(tok.claims)))
      : h('p', { class: 'muted small' }, 'Not signed yet.'));
}

/** attemptItem renders one attempt as an expandable item. */
function attemptItem(a, open) {
  const status = a.response ? `HTTP ${a.response.statusCode}` : (a.reasonCode || a.reason || (a.endedAt ? 'no response' : 'in flight'));
  const summary = h('summary', { 'data-testid': 'attempt-summary' },
    h('span', { class: 'attempt-no' }, `#${a.attempt}`),
    time(a.startedAt, { ms: true }),
    h('span', { class: 'muted small', 'data-testid': 'attempt-duration' }, duration(a.durationMs)),
    h('span', { class: 'attempt-status', 'data-testid': 'attempt-status' }, status),
    a.outcome ? badge(a.outcome, 'attempt-outcome') : null,
    h('span', { class: 'mono muted small break attempt-endpoint' }, a.endpoint));
  const el = h('details', {
    class: 'attempt', 'data-testid': 'attempt', 'data-attempt': String(a.attempt),
    'data-status': a.response ? String(a.response.statusCode) : '',
  }, summary, h('div', { class: 'attempt-body' }, requestPart(a), responsePart(a)));
  el.open = open;
  return el;
}

/** attemptsList renders attempts (oldest first from the API) newest first, the newest open. */
export function attemptsList(attempts) {
  if (!attempts || attempts.length === 0) {
    return h('p', { class: 'muted', 'data-testid': 'attempts-empty' }, 'No attempt yet.');
  }
  const newest = [...attempts].reverse();
  return h('div', { class: 'attempts', 'data-testid': 'attempts' }, newest.map((a, i) => attemptItem(a, i === 0)));
}
