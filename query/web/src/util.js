// Small helpers shared by the page's modules: DOM building, number/time formatting, KFL quoting.

/** Creates an element: h('div', {class: 'x', onclick: f}, child, 'text', …). */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  if (attrs) {
    for (const [k, v] of Object.entries(attrs)) {
      if (v == null || v === false) continue;
      if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
      else if (k === 'class') el.className = v;
      else if (k === 'dataset') Object.assign(el.dataset, v);
      else if (k === 'text') el.textContent = v;
      else el.setAttribute(k, v === true ? '' : v);
    }
  }
  for (const c of children.flat()) {
    if (c == null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export const $ = (sel, root = document) => root.querySelector(sel);

const UNITS = ['B', 'KB', 'MB', 'GB', 'TB', 'PB'];
export function fmtBytes(n) {
  if (n == null || Number.isNaN(n)) return '–';
  n = Number(n);
  let i = 0;
  while (Math.abs(n) >= 1000 && i < UNITS.length - 1) { n /= 1000; i++; }
  return (i === 0 ? String(n) : n.toFixed(n < 10 ? 2 : n < 100 ? 1 : 0)) + ' ' + UNITS[i];
}

const NF = new Intl.NumberFormat('en-US');
export function fmtNum(n) {
  if (n == null || n === '') return '–';
  const x = Number(n);
  return Number.isFinite(x) ? NF.format(x) : String(n);
}

export function fmtMs(n) {
  if (n == null) return '–';
  const x = Number(n);
  return x < 1 ? x.toFixed(3) + ' ms' : x < 100 ? x.toFixed(2) + ' ms' : Math.round(x) + ' ms';
}

/** A UTC time with milliseconds: 2026-11-26 09:00:01.234 (the store's times are UTC). */
export function fmtTime(v) {
  const ms = toMs(v);
  if (ms == null) return v == null ? '–' : String(v);
  return new Date(ms).toISOString().replace('T', ' ').replace('Z', '');
}

/** Epoch ms from a number (ms) or a timestamp string (RFC 3339 with up to µs; `Z` assumed). */
export function toMs(v) {
  if (v == null || v === '') return null;
  if (typeof v === 'number') return v;
  const s = String(v).trim();
  if (/^-?\d+(\.\d+)?$/.test(s)) return Number(s);
  let iso = s.replace(' ', 'T');
  const m = iso.match(/^(.*T\d\d:\d\d:\d\d)(\.\d+)?(.*)$/);
  let frac = 0;
  if (m) {
    frac = m[2] ? Number('0' + m[2]) * 1000 : 0;
    iso = m[1] + (m[3] || 'Z');
  }
  const t = Date.parse(iso);
  return Number.isNaN(t) ? null : t + Math.floor(frac);
}

export function fmtDuration(ms) {
  if (ms == null) return '–';
  const s = ms / 1000;
  if (s < 1) return `${Math.round(ms)} ms`;
  if (s < 120) return `${s.toFixed(s < 10 ? 2 : 0)} s`;
  if (s < 7200) return `${Math.round(s / 60)} min`;
  if (s < 172800) return `${(s / 3600).toFixed(1)} h`;
  return `${(s / 86400).toFixed(1)} d`;
}

/** A KFL string literal. */
export function kflString(s) {
  return '"' + String(s).replace(/\\/g, '\\\\').replace(/"/g, '\\"') + '"';
}

/** ANDs KFL clauses, each parenthesised (KFL's `and`/`or` share one precedence level). */
export function kflAnd(...clauses) {
  const parts = clauses.map((c) => (c || '').trim()).filter(Boolean);
  if (parts.length === 0) return '';
  if (parts.length === 1) return parts[0];
  return parts.map((c) => `(${c})`).join(' and ');
}

/**
 * JSON.parse that keeps `conn_id` (a 63-bit hash, beyond JS numbers' 53 bits) as a string, so
 * that it survives the trip into the page and back into SQL.
 */
export function parseJsonBig(text) {
  return JSON.parse(text.replace(/("conn_id"\s*:\s*)(-?\d{16,})(?=\s*[,}])/g, '$1"$2"'));
}

/** Saves a Blob as a file. */
export function download(blob, name) {
  const url = URL.createObjectURL(blob);
  const a = h('a', { href: url, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

export async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    const ta = h('textarea', { style: 'position:fixed;left:-9999px' });
    ta.value = text;
    document.body.append(ta);
    ta.select();
    const ok = document.execCommand('copy');
    ta.remove();
    return ok;
  }
}

/** UTF-8 byte offset → JS string index (the API's error spans are byte offsets). */
export function byteToIndex(str, byteOff) {
  let bytes = 0;
  let i = 0;
  while (i < str.length && bytes < byteOff) {
    const cp = str.codePointAt(i);
    bytes += cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
    i += cp > 0xffff ? 2 : 1;
  }
  return i;
}

/** Epoch ms → RFC 3339 with milliseconds (what every API time parameter accepts). */
export function isoTime(ms) {
  return ms == null ? null : new Date(Number(ms)).toISOString();
}
