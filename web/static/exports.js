// hookd console: the exports panel of a subscription. It lists the export
// jobs of the last seven days, starts and cancels them, downloads finished
// files with the bearer token, and polls every second while a job runs.

import * as api from './api.js';
import { h, replace, badge, time, showError, showNotice, busy, shortId } from './dom.js';

const activeStates = new Set(['processing', 'writing', 'active']);
const pollInterval = 1000;

/**
 * exportsPanel renders the exports of subscription sid; onChange runs when
 * a job ends. It returns {el, setExportable}: with 0 exportable events the
 * start button is disabled and says why (an export would be empty).
 */
export function exportsPanel(view, sid, onChange) {
  let timer = null;
  let known = new Map();
  let exportable = null;
  const start = h('button', {
    type: 'button', class: 'btn btn-primary btn-small', 'data-testid': 'export-start', 'aria-describedby': 'export-start-reason',
  }, 'Start export');
  const startReason = h('span', { id: 'export-start-reason', class: 'muted small', 'data-testid': 'export-start-reason', hidden: true },
    'Nothing to export: no failed event is waiting to be exported.');
  let starting = false;
  const guard = () => {
    const none = exportable === 0;
    start.disabled = starting || none;
    startReason.hidden = !none;
    start.dataset.exportable = exportable === null ? '' : String(exportable);
  };
  const body = h('tbody', {});
  const table = h('table', { class: 'table', 'data-testid': 'exports-table', hidden: true },
    h('thead', {}, h('tr', {},
      h('th', { scope: 'col' }, 'Export'), h('th', { scope: 'col' }, 'State'),
      h('th', { scope: 'col' }, 'Created'), h('th', { scope: 'col' }, 'Updated'),
      h('th', { scope: 'col' }, 'Events'), h('th', { scope: 'col' }, h('span', { class: 'sr-only' }, 'Actions')))),
    body);
  const empty = h('p', { class: 'empty', 'data-testid': 'exports-empty', hidden: true }, 'No exports in the last 7 days.');
  const status = h('span', { class: 'muted small', 'data-testid': 'exports-status', 'aria-live': 'polite' });

  view.onLeave(() => clearTimeout(timer));

  async function load() {
    clearTimeout(timer);
    timer = null;
    let jobs;
    try {
      const r = await api.call('GET', api.subscriptionPath(sid, '/exports'));
      jobs = (r && r._embedded && r._embedded.exports) || [];
    } catch (err) {
      if (view.alive) showError(err, 'Exports');
      return;
    }
    if (!view.alive) return;
    jobs.sort((a, b) => String(b.createdAt).localeCompare(String(a.createdAt)));
    let ended = false;
    const next = new Map();
    for (const job of jobs) {
      const before = known.get(job.id);
      if (before && activeStates.has(before) && !activeStates.has(job.state)) ended = true;
      next.set(job.id, job.state);
    }
    known = next;
    replace(body, jobs.map(jobRow));
    table.hidden = jobs.length === 0;
    empty.hidden = jobs.length > 0;
    const running = jobs.some((j) => activeStates.has(j.state));
    status.textContent = running ? 'Updating every second…' : '';
    if (ended) onChange();
    if (running) timer = setTimeout(load, pollInterval);
  }

  function jobRow(job) {
    const self = (job._links && job._links.self && job._links.self.href) || api.subscriptionPath(sid, `/exports/${encodeURIComponent(job.id)}`);
    const download = job._links && job._links.download && job._links.download.href;
    const actions = h('td', { class: 'row-actions', 'data-label': '' });
    // A job can be canceled only while it waits for the exporter
    // (processing); once it writes, it runs to its end.
    if (job.state === 'processing' || job.state === 'active') {
      const cancel = h('button', { type: 'button', class: 'btn btn-small btn-danger-ghost', 'data-testid': 'export-cancel' }, 'Cancel');
      cancel.addEventListener('click', () => busy(cancel, async () => {
        try {
          await api.call('DELETE', self);
          showNotice('Export canceled.');
        } catch (err) {
          if (err.status === 409) showError('The export started writing before the cancel arrived: it can no longer be canceled.', 'Cancel export');
          else showError(err, 'Cancel export');
        }
        await load();
      }));
      actions.append(cancel);
    } else if (job.state === 'writing') {
      actions.append(h('span', { class: 'muted small', 'data-testid': 'export-no-cancel' }, 'Writing: too late to cancel'));
    }
    if (job.state === 'completed') {
      const button = h('button', { type: 'button', class: 'btn btn-small', 'data-testid': 'export-download' }, 'Download');
      button.addEventListener('click', () => busy(button, () => saveFile(download || `${self}/download`, `${job.id}.ndjson`)));
      actions.append(button);
    }
    const count = Number.isFinite(job.eventCount) ? job.eventCount : null;
    return h('tr', {
      'data-testid': 'export-row', 'data-export-id': job.id, 'data-state': job.state || '',
      'data-event-count': count === null ? '' : String(count),
    },
    h('td', { 'data-label': 'Export' }, h('span', { class: 'mono', title: job.id }, shortId(job.id))),
    h('td', { 'data-label': 'State' }, badge(job.state, 'export-state')),
    h('td', { 'data-label': 'Created' }, time(job.createdAt)),
    h('td', { 'data-label': 'Updated' }, time(job.updatedAt)),
    h('td', { 'data-label': 'Events' }, h('span', { 'data-testid': 'export-count' }, count === null ? '—' : String(count))),
    actions);
  }

  start.addEventListener('click', async () => {
    starting = true;
    guard();
    start.setAttribute('aria-busy', 'true');
    try {
      await api.call('POST', api.subscriptionPath(sid, '/exports'));
      showNotice('Export started.');
    } catch (err) {
      showError(err, 'Start export');
    } finally {
      starting = false;
      start.removeAttribute('aria-busy');
      guard();
    }
    await load();
  });

  load();
  const el = h('section', { class: 'panel', 'aria-labelledby': 'exports-heading', 'data-testid': 'exports' },
    h('div', { class: 'panel-head' }, h('h2', { id: 'exports-heading' }, 'Exports'), status, startReason, start),
    h('p', { class: 'help' },
      'An export collects the failed events not exported before into an NDJSON file, downloadable for 7 days. ',
      'A job can be canceled while it waits for its turn (processing); once it is writing it runs to the end.'),
    h('div', { class: 'table-wrap' }, table),
    empty);
  return {
    el,
    setExportable(n) {
      exportable = Number.isFinite(n) ? n : null;
      guard();
    },
  };
}

/** saveFile downloads path with the bearer token and saves it through a Blob URL. */
async function saveFile(path, fallbackName) {
  let res;
  try {
    res = await api.raw('GET', path, { headers: { Accept: 'application/x-ndjson' } });
  } catch (err) {
    showError(err, 'Download');
    return;
  }
  let blob;
  try {
    blob = await res.blob();
  } catch (err) {
    showError(`could not read the file (${err.message || err})`, 'Download');
    return;
  }
  const name = decodedName(api.filenameFrom(res.headers.get('Content-Disposition'), fallbackName),
    res.headers.get('Content-Encoding'));
  const url = URL.createObjectURL(blob);
  const a = h('a', { href: url, download: name, class: 'sr-only' });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60000);
  showNotice(`Saved ${name}.`);
}

/**
 * decodedName drops the compression suffix (.gz, .zst) from the name of a
 * file sent with a Content-Encoding: fetch() has decoded the body already,
 * so what is saved is plain NDJSON.
 */
export function decodedName(name, contentEncoding) {
  const encoding = String(contentEncoding || '').trim().toLowerCase();
  if (!encoding || encoding === 'identity') return name;
  const plain = name.replace(/\.(?:gz|gzip|zst|zstd)$/i, '');
  return plain || name;
}
