// The histogram of connections over the store's history (failed stacked apart), drawn as SVG;
// dragging across it brushes a window.
import { h, fmtNum, fmtTime, fmtDuration } from './util.js';

const NS = 'http://www.w3.org/2000/svg';
const PAD_L = 44;
const PAD_R = 28;
const PAD_T = 8;
const PAD_B = 20;

function s(tag, attrs, ...kids) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, v);
  for (const c of kids) el.append(c);
  return el;
}

function niceTicks(from, to, n) {
  const span = to - from;
  const steps = [1e3, 5e3, 15e3, 30e3, 60e3, 300e3, 900e3, 1800e3, 3600e3, 3 * 3600e3, 6 * 3600e3, 12 * 3600e3, 86400e3, 2 * 86400e3, 7 * 86400e3, 30 * 86400e3];
  let step = steps.find((x) => span / x <= n) || steps[steps.length - 1];
  if (span / 200 < 1e3 && span / n < 1e3) step = Math.max(1, Math.ceil(span / n / 100) * 100);
  const out = [];
  for (let t = Math.ceil(from / step) * step; t <= to; t += step) out.push(t);
  return { ticks: out, step };
}

function tickLabel(t, step) {
  const iso = new Date(t).toISOString();
  if (step >= 86400e3) return iso.slice(5, 10);
  if (step >= 60e3) return iso.slice(11, 16);
  if (step >= 1e3) return iso.slice(11, 19);
  return iso.slice(14, 23);
}

export class Timeline {
  constructor(container, onBrush) {
    this.container = container;
    this.onBrush = onBrush;
    this.data = null;
    this.window = null;
    this.svg = s('svg', { class: 'histogram', role: 'img', 'aria-label': 'connections over time' });
    this.info = h('div', { class: 'hist-info' });
    container.append(this.svg, this.info);
    this.drag = null;
    this.svg.addEventListener('pointerdown', (e) => this.down(e));
    this.svg.addEventListener('pointermove', (e) => this.move(e));
    this.svg.addEventListener('pointerup', (e) => this.up(e));
    this.svg.addEventListener('pointerleave', () => { if (!this.drag) this.info.textContent = this.summary(); });
    new ResizeObserver(() => this.draw()).observe(container);
  }

  set(data, window) {
    this.data = data;
    this.window = window;
    this.draw();
  }

  setWindow(window) {
    this.window = window;
    this.draw();
  }

  width() {
    return Math.max(200, this.container.clientWidth);
  }

  x(t) {
    const d = this.data;
    const span = Math.max(1, d.to_ms - d.from_ms);
    return PAD_L + ((t - d.from_ms) / span) * (this.width() - PAD_L - PAD_R);
  }

  t(x) {
    const d = this.data;
    const span = Math.max(1, d.to_ms - d.from_ms);
    const r = (x - PAD_L) / (this.width() - PAD_L - PAD_R);
    return Math.round(d.from_ms + Math.max(0, Math.min(1, r)) * span);
  }

  summary() {
    const d = this.data;
    if (!d) return '';
    const total = d.buckets.reduce((a, b) => a + Number(b.connections || 0), 0);
    const failed = d.buckets.reduce((a, b) => a + Number(b.failed || 0), 0);
    return `${fmtNum(total)} connections (${fmtNum(failed)} failed) in the data, ${fmtTime(d.data_from_ms ?? d.from_ms)} – ${fmtTime(d.data_to_ms ?? d.to_ms)} UTC · drag to select a window`;
  }

  draw() {
    const d = this.data;
    const svg = this.svg;
    const W = this.width();
    const H = 96;
    svg.setAttribute('width', W);
    svg.setAttribute('height', H);
    svg.setAttribute('viewBox', `0 0 ${W} ${H}`);
    svg.replaceChildren();
    if (!d || !d.buckets) return;
    const max = Math.max(1, ...d.buckets.map((b) => Number(b.connections || 0)));
    const y = (v) => H - PAD_B - (v / max) * (H - PAD_B - PAD_T);
    const bw = Math.max(1, this.x(d.from_ms + d.bucket_ms) - this.x(d.from_ms));
    const bars = s('g', { class: 'bars' });
    for (const b of d.buckets) {
      const n = Number(b.connections || 0);
      const f = Math.min(n, Number(b.failed || 0));
      if (!n) continue;
      const x0 = this.x(b.t);
      // The last bucket can reach past the end of the range: draw only what is inside.
      const w = Math.max(1, Math.min(bw, this.x(d.to_ms) - x0) - (bw > 4 ? 1 : 0));
      const title = s('title', {}, `${fmtTime(b.t)} UTC: ${fmtNum(n)} connections, ${fmtNum(f)} failed`);
      bars.append(s('rect', { class: 'ok', x: x0, y: y(n), width: w, height: Math.max(0, y(f) - y(n)) }, title));
      if (f) bars.append(s('rect', { class: 'failed', x: x0, y: y(f), width: w, height: H - PAD_B - y(f) }, title.cloneNode(true)));
    }
    const axis = s('g', { class: 'axis' });
    axis.append(s('line', { x1: PAD_L, x2: W - PAD_R, y1: H - PAD_B + 0.5, y2: H - PAD_B + 0.5 }));
    const { ticks, step } = niceTicks(d.from_ms, d.to_ms, Math.max(2, Math.floor((W - PAD_L) / 110)));
    for (const t of ticks) {
      const x = this.x(t);
      axis.append(s('line', { x1: x, x2: x, y1: H - PAD_B, y2: H - PAD_B + 4 }));
      axis.append(s('text', { x, y: H - 5, 'text-anchor': 'middle' }, tickLabel(t, step)));
    }
    axis.append(s('text', { x: PAD_L - 6, y: PAD_T + 8, 'text-anchor': 'end' }, fmtNum(max)));
    axis.append(s('text', { x: PAD_L - 6, y: H - PAD_B, 'text-anchor': 'end' }, '0'));
    svg.append(bars, axis);
    if (this.window) {
      const a = Math.max(PAD_L, this.x(this.window.from));
      const b = Math.min(W - PAD_R, this.x(this.window.to));
      if (b > a - 1) {
        svg.append(s('rect', { class: 'window', x: a, y: PAD_T - 4, width: Math.max(2, b - a), height: H - PAD_B - PAD_T + 4 }));
      }
    }
    this.brushRect = s('rect', { class: 'brush', x: 0, y: PAD_T - 4, width: 0, height: H - PAD_B - PAD_T + 4, visibility: 'hidden' });
    svg.append(this.brushRect);
    this.info.textContent = this.summary();
  }

  local(e) {
    const r = this.svg.getBoundingClientRect();
    return e.clientX - r.left;
  }

  down(e) {
    if (!this.data || e.button !== 0) return;
    this.svg.setPointerCapture(e.pointerId);
    this.drag = { x0: this.local(e), x1: this.local(e) };
    this.updateBrush();
  }

  move(e) {
    if (!this.data) return;
    const x = this.local(e);
    if (this.drag) {
      this.drag.x1 = x;
      this.updateBrush();
    } else {
      this.info.textContent = `${fmtTime(this.t(x))} UTC`;
    }
  }

  updateBrush() {
    const a = Math.min(this.drag.x0, this.drag.x1);
    const b = Math.max(this.drag.x0, this.drag.x1);
    this.brushRect.setAttribute('x', a);
    this.brushRect.setAttribute('width', Math.max(1, b - a));
    this.brushRect.setAttribute('visibility', 'visible');
    this.info.textContent = `${fmtTime(this.t(a))} – ${fmtTime(this.t(b))} UTC (${fmtDuration(this.t(b) - this.t(a))})`;
  }

  up(e) {
    if (!this.drag) return;
    const { x0, x1 } = this.drag;
    this.drag = null;
    this.brushRect.setAttribute('visibility', 'hidden');
    if (Math.abs(x1 - x0) < 3) return; // a click, not a drag
    const from = this.t(Math.min(x0, x1));
    let to = this.t(Math.max(x0, x1));
    if (to <= from) to = from + 1;
    this.onBrush(from, to);
    e.preventDefault();
  }
}
