// hookd console: the charts of a subscription's successes and failures,
// per hour over the last 7 days and per minute over the last hour: inline
// SVGs of stacked bars, refreshed while the page is open.

import * as api from './api.js';
import { h, replace, showError } from './dom.js';

const MINUTE = 60 * 1000;
const HOUR = 60 * MINUTE;
const refreshEvery = 5000;
const SVG = 'http://www.w3.org/2000/svg';
const height = 80;

// The two charts: the spans the API answers and how many of them to show.
const charts = [
  { key: 'hours', step: HOUR, count: 7 * 24, testid: 'timeline-chart', label: 'Successes and failures per hour, last 7 days' },
  { key: 'minutes', step: MINUTE, count: 60, testid: 'timeline-minutes-chart', label: 'Successes and failures per minute, last hour' },
];

function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  for (const c of children) el.append(c);
  return el;
}

/**
 * slots fills the spans the API answered into count slots of step ms,
 * oldest first, ending with the current one; older spans are left out.
 */
export function slots(spans, step, count, now = Date.now()) {
  const last = Math.floor(now / step) * step;
  const first = last - (count - 1) * step;
  const out = Array.from({ length: count }, (_, i) => ({ start: first + i * step, succeeded: 0, failed: 0 }));
  for (const s of spans || []) {
    const i = Math.round((Date.parse(s.start) - first) / step);
    if (i >= 0 && i < count) {
      out[i].succeeded += s.succeeded;
      out[i].failed += s.failed;
    }
  }
  return out;
}

function draw(chart, data) {
  const bar = 4;
  const width = chart.count * bar;
  const max = Math.max(1, ...data.map((s) => s.succeeded + s.failed));
  const bars = [];
  data.forEach((s, i) => {
    if (s.succeeded + s.failed === 0) return;
    const ok = (s.succeeded / max) * height;
    const bad = (s.failed / max) * height;
    const x = i * bar;
    const title = svg('title');
    title.textContent = `${new Date(s.start).toLocaleString()}: ${s.succeeded} succeeded, ${s.failed} failed`;
    bars.push(svg('g', { class: 'chart-span' }, title,
      svg('rect', { class: 'chart-ok', x, y: height - ok, width: bar - 1, height: ok }),
      svg('rect', { class: 'chart-bad', x, y: height - ok - bad, width: bar - 1, height: bad })));
  });
  return svg('svg', { viewBox: `0 0 ${width} ${height}`, preserveAspectRatio: 'none', class: 'chart-svg', role: 'img',
    'aria-label': chart.label }, ...bars);
}

/**
 * timelinePanel shows the charts of subscription sid; it loads at once and
 * every few seconds until the view is left, and stops at an error.
 */
export function timelinePanel(view, sid) {
  let timer = null;
  const boxes = charts.map((c) => ({
    chart: c,
    box: h('div', { class: 'chart', 'data-testid': c.testid }),
    legend: h('p', { class: 'muted small chart-legend' }),
  }));
  view.onLeave(() => clearTimeout(timer));

  async function load() {
    clearTimeout(timer);
    timer = null;
    try {
      const r = await api.call('GET', api.subscriptionPath(sid, '/summary/timeline'));
      if (!view.alive) return;
      const now = Date.now();
      for (const { chart, box, legend } of boxes) {
        const data = slots(r && r[chart.key], chart.step, chart.count, now);
        const succeeded = data.reduce((n, s) => n + s.succeeded, 0);
        const failed = data.reduce((n, s) => n + s.failed, 0);
        box.dataset.succeeded = String(succeeded);
        box.dataset.failed = String(failed);
        replace(box, draw(chart, data));
        replace(legend, h('span', { class: 'chart-key chart-key-ok' }), ` ${succeeded} succeeded `,
          h('span', { class: 'chart-key chart-key-bad' }), ` ${failed} failed`);
      }
    } catch (err) {
      // Stop refreshing: one message, not one every few seconds.
      if (view.alive) showError(err, 'Charts');
      return;
    }
    if (view.alive) timer = setTimeout(load, refreshEvery);
  }
  load();

  const el = h('section', { class: 'panel', 'aria-labelledby': 'timeline-heading' },
    h('div', { class: 'panel-head' }, h('h2', { id: 'timeline-heading' }, 'Deliveries'),
      h('span', { class: 'muted small' }, 'refreshed every 5 s')),
    h('h3', { class: 'chart-title' }, 'Per hour, last 7 days'), boxes[0].box, boxes[0].legend,
    h('h3', { class: 'chart-title' }, 'Per minute, last hour'), boxes[1].box, boxes[1].legend);
  return { el, reload: load };
}
