// The view's state and its URL form (query string), so links can be shared and back/forward work.
//   q       the KFL filter as typed
//   dialect kfl1 (absent) | kfl2: the language of q
//   range   15m | 1h | 24h | 7d | all   (relative to the end of the data), or
//   from,to epoch ms (a brushed or custom window; `to` exclusive)
//   level   namespace | workload | pod
//   expand  namespaces broken down to the level (comma list); absent = all of them at `level`
//           (for level=namespace: none)
//   sel     n:<node id> | e:<edge id>
//   tab     conns | dns | health | insights
//   hide    dns,node (noise toggles)

export const PRESETS = [
  ['15m', 15 * 60e3, '15 min'],
  ['1h', 3600e3, '1 h'],
  ['24h', 86400e3, '24 h'],
  ['7d', 7 * 86400e3, '7 d'],
  ['all', null, 'all'],
];

export const LEVELS = ['namespace', 'workload', 'pod'];
export const TABS = ['conns', 'dns', 'health', 'insights'];

export function defaultState() {
  return { q: '', dialect: 'kfl1', range: '1h', from: null, to: null, level: 'namespace', expand: [], sel: null, tab: 'conns', hide: [] };
}

export function parseUrl(search) {
  const p = new URLSearchParams(search);
  const s = defaultState();
  if (p.has('q')) s.q = p.get('q');
  if (p.get('dialect') === 'kfl2') s.dialect = 'kfl2';
  const from = p.get('from');
  const to = p.get('to');
  if (from && to && /^\d+$/.test(from) && /^\d+$/.test(to)) {
    s.range = null;
    s.from = Number(from);
    s.to = Number(to);
  } else if (p.has('range') && PRESETS.some(([k]) => k === p.get('range'))) {
    s.range = p.get('range');
  }
  if (LEVELS.includes(p.get('level'))) s.level = p.get('level');
  if (p.has('expand')) {
    s.expand = p.get('expand').split(',').filter(Boolean);
  } else {
    s.expand = s.level === 'namespace' ? [] : null;
  }
  if (p.get('sel')) s.sel = p.get('sel');
  if (TABS.includes(p.get('tab'))) s.tab = p.get('tab');
  if (p.get('hide')) s.hide = p.get('hide').split(',').filter((x) => x === 'dns' || x === 'node');
  return s;
}

export function toUrl(s) {
  const p = new URLSearchParams();
  if (s.q) p.set('q', s.q);
  if (s.dialect === 'kfl2') p.set('dialect', 'kfl2');
  if (s.range) p.set('range', s.range);
  else {
    p.set('from', String(s.from));
    p.set('to', String(s.to));
  }
  p.set('level', s.level);
  // Namespace names never hold commas (DNS-1123 labels), so a comma list is unambiguous.
  if (s.expand && (s.level !== 'namespace' || s.expand.length)) p.set('expand', s.expand.join(','));
  if (s.sel) p.set('sel', s.sel);
  if (s.tab !== 'conns') p.set('tab', s.tab);
  if (s.hide.length) p.set('hide', s.hide.join(','));
  return '?' + p.toString();
}

/** The /api/v1/map parameters for a state's level and expanded namespaces. */
export function mapLevel(s) {
  if (s.level === 'namespace') return s.expand && s.expand.length ? { level: 'workload', expand: s.expand.join(',') } : { level: 'namespace' };
  if (s.expand == null) return { level: s.level };
  if (!s.expand.length) return { level: 'namespace' };
  return { level: s.level, expand: s.expand.join(',') };
}
