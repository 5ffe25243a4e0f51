// The HTTP API client: bearer token (asked once, kept in sessionStorage), JSON errors as ApiError.
import { h, parseJsonBig, isoTime } from './util.js';

const TOKEN_KEY = 'podwire.token';

export class ApiError extends Error {
  constructor(status, body) {
    const e = (body && body.error) || {};
    super(e.message || `HTTP ${status}`);
    this.status = status;
    this.cls = e.class || 'HTTP_' + status;
    this.detail = e;
  }
}

let tokenPrompt = null;

/** Shows the token dialog once; concurrent 401s share it. */
function askToken(again) {
  if (!tokenPrompt) {
    tokenPrompt = new Promise((resolve) => {
      const input = h('input', { type: 'password', id: 'token-input', autocomplete: 'off', placeholder: 'token' });
      const dlg = h('dialog', { id: 'token-dialog', class: 'dialog' },
        h('form', { method: 'dialog' },
          h('h3', null, 'API token'),
          h('p', null, again ? 'That token was refused. ' : '',
            'This podwire server needs a bearer token (',
            h('code', null, '--token'), ' / ', h('code', null, 'PODWIRE_TOKEN'),
            '). It is kept for this browser tab only.'),
          input,
          h('div', { class: 'dialog-buttons' }, h('button', { class: 'primary', value: 'ok' }, 'Use token'))));
      document.body.append(dlg);
      dlg.addEventListener('close', () => {
        sessionStorage.setItem(TOKEN_KEY, input.value.trim());
        dlg.remove();
        tokenPrompt = null;
        resolve();
      });
      dlg.showModal();
      input.focus();
    });
  }
  return tokenPrompt;
}

// The server runs a few queries at once (`--max-concurrent-queries`, 4 by default) and answers
// more with 503 BUSY and Retry-After. One view fires several requests together (map, timeline,
// table, health), so the page keeps at most IN_FLIGHT of its own running, body included, and
// waits and retries when the server is busy anyway (other tabs, other users).
const IN_FLIGHT = 3;
const BUSY_RETRIES = 6;
let running = 0;
const waiting = [];

async function withSlot(fn) {
  if (running >= IN_FLIGHT) await new Promise((resolve) => waiting.push(resolve));
  running += 1;
  try {
    return await fn();
  } finally {
    running -= 1;
    const next = waiting.shift();
    if (next) next();
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** fetch() with the token; on 401 asks for one and retries; on 503 BUSY waits Retry-After and
 * retries. Returns the Response (ok) or throws ApiError. */
export async function apiFetch(path, opts = {}, attempt = 0, busy = 0) {
  const headers = { ...(opts.headers || {}) };
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers.Authorization = `Bearer ${token}`;
  const res = await fetch(path, { ...opts, headers });
  if (res.status === 401 && attempt < 3) {
    await askToken(attempt > 0 || !!token);
    return apiFetch(path, opts, attempt + 1, busy);
  }
  if (res.status === 503 && res.headers.get('Retry-After') && busy < BUSY_RETRIES) {
    const seconds = Math.min(Number(res.headers.get('Retry-After')) || 1, 5);
    await sleep(seconds * 1000 * (0.5 + Math.random()));
    return apiFetch(path, opts, attempt, busy + 1);
  }
  if (!res.ok) {
    let body = null;
    try { body = parseJsonBig(await res.text()); } catch { /* not JSON */ }
    throw new ApiError(res.status, body);
  }
  return res;
}

export async function getJson(path, params) {
  const qs = params ? '?' + new URLSearchParams(Object.entries(params).filter(([, v]) => v != null && v !== '')) : '';
  return withSlot(async () => {
    const res = await apiFetch(path + qs, { signal: params && params.signal });
    return parseJsonBig(await res.text());
  });
}

export async function postJson(path, body, signal) {
  return withSlot(async () => {
    const res = await apiFetch(path, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body), signal });
    return parseJsonBig(await res.text());
  });
}

let offsetSupported = true;

/**
 * One page of rows for a KFL query: POST /api/v1/query with limit+offset. If the server refuses
 * `offset` (an older API), falls back to limit = offset + n and slices.
 */
export async function queryPage({ query, dialect, and, from, to, limit, offset }) {
  const base = { query, limit };
  if (dialect) base.dialect = dialect;
  if (and) base.and = and;
  if (from != null) base.from = isoTime(from);
  if (to != null) base.to = isoTime(to);
  if (offsetSupported) {
    try {
      return await postJson('/api/v1/query', { ...base, offset, format: 'json' });
    } catch (e) {
      if (!(e instanceof ApiError && e.status === 400 && /offset/i.test(e.message))) throw e;
      offsetSupported = false;
    }
  }
  const rows = await postJson('/api/v1/query', { ...base, limit: offset + limit, format: 'json' });
  return rows.slice(offset);
}

export function sql(statement, limit = 1000) {
  return postJson('/api/v1/sql', { sql: statement, limit, format: 'json' });
}
