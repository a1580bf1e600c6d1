// hookd console: the chart of a subscription's successes and failures per
// hour over the last 7 days, an inline SVG of stacked bars refreshed while
// the page is open.

import * as api from './api.js';
import { h, replace, showError } from './dom.js';

const HOUR = 3600 * 1000;
const HOURS = 7 * 24; // the retention window the API answers
const refreshEvery = 5000;
const SVG = 'http://www.w3.org/2000/svg';
const width = HOURS * 4;
const height = 80;

function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  for (const c of children) el.append(c);
  return el;
}

/**
 * hourSlots fills the hours the API answered into one slot per hour of the
 * last 7 days, oldest first, ending with the current hour.
 */
export function hourSlots(hours, now = Date.now()) {
  const last = Math.floor(now / HOUR) * HOUR;
  const first = last - (HOURS - 1) * HOUR;
  const slots = Array.from({ length: HOURS }, (_, i) => ({ start: first + i * HOUR, succeeded: 0, failed: 0 }));
  for (const hr of hours || []) {
    const i = Math.round((Date.parse(hr.start) - first) / HOUR);
    if (i >= 0 && i < HOURS) {
      slots[i].succeeded += hr.succeeded;
      slots[i].failed += hr.failed;
    }
  }
  return slots;
}

function draw(slots) {
  const max = Math.max(1, ...slots.map((s) => s.succeeded + s.failed));
  const bar = width / HOURS;
  const bars = [];
  slots.forEach((s, i) => {
    if (s.succeeded + s.failed === 0) return;
    const ok = (s.succeeded / max) * height;
    const bad = (s.failed / max) * height;
    const x = i * bar;
    const title = svg('title');
    title.textContent = `${new Date(s.start).toLocaleString()}: ${s.succeeded} succeeded, ${s.failed} failed`;
    bars.push(svg('g', { class: 'chart-hour' }, title,
      svg('rect', { class: 'chart-ok', x, y: height - ok, width: bar - 1, height: ok }),
      svg('rect', { class: 'chart-bad', x, y: height - ok - bad, width: bar - 1, height: bad })));
  });
  return svg('svg', { viewBox: `0 0 ${width} ${height}`, preserveAspectRatio: 'none', class: 'chart-svg', role: 'img',
    'aria-label': 'Successes and failures per hour, last 7 days' }, ...bars);
}

/**
 * timelinePanel is the chart of subscription sid; it loads at once and
 * every few seconds until the view is left.
 */
export function timelinePanel(view, sid) {
  let timer = null;
  const box = h('div', { class: 'chart', 'data-testid': 'timeline-chart', 'aria-live': 'off' });
  const legend = h('p', { class: 'muted small chart-legend', 'data-testid': 'timeline-legend' });
  view.onLeave(() => clearTimeout(timer));

  async function load() {
    clearTimeout(timer);
    timer = null;
    try {
      const r = await api.call('GET', api.subscriptionPath(sid, '/summary/timeline'));
      if (!view.alive) return;
      const slots = hourSlots(r && r.hours);
      const succeeded = slots.reduce((n, s) => n + s.succeeded, 0);
      const failed = slots.reduce((n, s) => n + s.failed, 0);
      box.dataset.succeeded = String(succeeded);
      box.dataset.failed = String(failed);
      replace(box, draw(slots));
      replace(legend, h('span', { class: 'chart-key chart-key-ok' }), ` ${succeeded} succeeded `,
        h('span', { class: 'chart-key chart-key-bad' }), ` ${failed} failed, per hour`);
    } catch (err) {
      // Stop refreshing: one message, not one every few seconds.
      if (view.alive) showError(err, 'Chart');
      return;
    }
    if (view.alive) timer = setTimeout(load, refreshEvery);
  }
  load();

  const el = h('section', { class: 'panel', 'aria-labelledby': 'timeline-heading' },
    h('div', { class: 'panel-head' }, h('h2', { id: 'timeline-heading' }, 'Deliveries'),
      h('span', { class: 'muted small' }, 'last 7 days, refreshed every 5 s')),
    box, legend);
  return { el, reload: load };
}
