// The KFL box: a textarea over a mirror that marks an error's span, completion of field names,
// aliases, helpers and known values from /api/v1/fields.
import { h, byteToIndex } from './util.js';

export class KflInput {
  constructor(root, onSubmit) {
    this.onSubmit = onSubmit;
    this.fields = [];
    this.words = [];
    this.mirror = h('div', { class: 'kfl-mirror', 'aria-hidden': 'true' });
    this.input = h('textarea', {
      id: 'kfl',
      class: 'kfl-input',
      rows: 1,
      spellcheck: 'false',
      autocomplete: 'off',
      autocapitalize: 'off',
      'aria-label': 'KFL filter',
      placeholder: 'KFL filter, e.g.  dst.namespace == "" and tcp      (Enter applies, Shift+Enter new line, Ctrl+Space completes)',
    });
    this.list = h('ul', { class: 'completions', role: 'listbox' });
    this.error = h('div', { id: 'kfl-error', class: 'kfl-error', role: 'alert' });
    const wrap = h('div', { class: 'kfl-wrap' }, this.mirror, this.input, this.list);
    root.append(wrap, this.error);
    this.items = [];
    this.active = 0;
    this.input.addEventListener('input', () => {
      this.clearError();
      this.autosize();
      this.complete(false);
    });
    this.input.addEventListener('keydown', (e) => this.key(e));
    this.input.addEventListener('blur', () => setTimeout(() => this.close(), 150));
    this.input.addEventListener('scroll', () => { this.mirror.scrollTop = this.input.scrollTop; });
  }

  setCatalog(cat) {
    this.fields = cat.fields || [];
    const words = [];
    for (const f of this.fields) words.push({ word: f.name, kind: f.type, doc: f.doc, field: f });
    for (const a of cat.aliases || []) words.push({ word: typeof a === 'string' ? a : a.name, kind: 'alias', doc: typeof a === 'string' ? '' : a.doc || '' });
    for (const x of cat.helpers || []) {
      const name = typeof x === 'string' ? x : x.name;
      words.push({ word: name, kind: 'helper', doc: typeof x === 'string' ? '' : x.doc || '' });
    }
    for (const k of cat.keywords || ['and', 'or']) words.push({ word: k, kind: 'keyword', doc: '' });
    this.words = words;
  }

  /** The language typed: the placeholder and the box's label follow it. */
  setDialect(dialect) {
    if (this.dialect === dialect) return;
    this.dialect = dialect;
    this.input.placeholder = dialect === 'kfl2'
      ? 'KFL2 filter, e.g.  dst.namespace == "" && tcp      (Enter applies, Shift+Enter new line, Ctrl+Space completes)'
      : 'KFL filter, e.g.  dst.namespace == "" and tcp      (Enter applies, Shift+Enter new line, Ctrl+Space completes)';
    this.input.setAttribute('aria-label', dialect === 'kfl2' ? 'KFL2 filter' : 'KFL filter');
  }

  get value() {
    return this.input.value;
  }

  set value(v) {
    this.input.value = v;
    this.clearError();
    this.autosize();
  }

  autosize() {
    this.input.style.height = 'auto';
    this.input.style.height = Math.min(120, this.input.scrollHeight) + 'px';
    this.mirror.style.height = this.input.style.height;
  }

  key(e) {
    const open = this.list.classList.contains('open');
    if (open && (e.key === 'ArrowDown' || e.key === 'ArrowUp')) {
      e.preventDefault();
      this.active = (this.active + (e.key === 'ArrowDown' ? 1 : -1) + this.items.length) % this.items.length;
      this.paint();
    } else if (open && (e.key === 'Tab' || (e.key === 'Enter' && !e.shiftKey))) {
      e.preventDefault();
      this.accept(this.items[this.active]);
    } else if (e.key === 'Escape') {
      this.close();
    } else if (e.key === ' ' && e.ctrlKey) {
      e.preventDefault();
      this.complete(true);
    } else if (e.key === 'Enter' && !e.shiftKey) {
      e.preventDefault();
      this.close();
      this.onSubmit(this.input.value);
    }
  }

  /** What is being typed at the caret: a selector, or a value after `field ==`. */
  context() {
    const pos = this.input.selectionStart;
    const before = this.input.value.slice(0, pos);
    const val = before.match(/([A-Za-z_][\w.]*)\s*(==|!=)\s*("?)([^"\s()]*)$/);
    if (val) {
      const f = this.fields.find((x) => x.name === val[1]);
      if (f && f.values && f.values.length) {
        return { kind: 'value', field: f, prefix: val[4], start: pos - val[4].length - val[3].length, end: pos };
      }
    }
    const w = before.match(/[A-Za-z_][\w.]*$/);
    // Not inside a string literal.
    const quotes = (before.match(/(^|[^\\])"/g) || []).length;
    if (quotes % 2 === 1) return null;
    return { kind: 'word', prefix: w ? w[0] : '', start: pos - (w ? w[0].length : 0), end: pos };
  }

  complete(force) {
    const ctx = this.context();
    if (!ctx || (!force && ctx.kind === 'word' && ctx.prefix.length < 1)) return this.close();
    let items;
    if (ctx.kind === 'value') {
      items = ctx.field.values
        .filter((v) => v.value.startsWith(ctx.prefix))
        .map((v) => ({ word: `"${v.value}"`, kind: 'value', doc: v.doc || '', replaceStart: ctx.start, replaceEnd: ctx.end }));
    } else {
      const p = ctx.prefix.toLowerCase();
      const starts = this.words.filter((w) => w.word.toLowerCase().startsWith(p));
      const has = p.length > 1 ? this.words.filter((w) => !w.word.toLowerCase().startsWith(p) && w.word.toLowerCase().includes(p)) : [];
      items = [...starts, ...has].filter((w) => w.word !== ctx.prefix).map((w) => ({ ...w, replaceStart: ctx.start, replaceEnd: ctx.end }));
    }
    this.items = items.slice(0, 14);
    this.active = 0;
    if (!this.items.length) return this.close();
    this.paint();
  }

  paint() {
    this.list.replaceChildren(...this.items.map((it, i) =>
      h('li', {
        class: i === this.active ? 'active' : '',
        role: 'option',
        onmousedown: (e) => { e.preventDefault(); this.accept(it); },
      }, h('span', { class: 'c-word' }, it.word), h('span', { class: 'c-kind' }, it.kind), h('span', { class: 'c-doc' }, it.doc))));
    this.list.classList.add('open');
    const a = this.list.children[this.active];
    if (a) a.scrollIntoView({ block: 'nearest' });
  }

  accept(it) {
    if (!it) return;
    const v = this.input.value;
    let word = it.word;
    if (it.kind === 'helper') word += '(';
    this.input.value = v.slice(0, it.replaceStart) + word + v.slice(it.replaceEnd);
    const caret = it.replaceStart + word.length;
    this.input.setSelectionRange(caret, caret);
    this.close();
    this.input.focus();
    this.autosize();
  }

  close() {
    this.list.classList.remove('open');
    this.items = [];
  }

  clearError() {
    this.error.replaceChildren();
    this.error.classList.remove('show');
    delete this.error.dataset.line;
    delete this.error.dataset.col;
    this.input.classList.remove('bad');
    this.mirror.replaceChildren();
  }

  /** Shows a KFL error: marks its span in the box, and line/column, message and hint below. */
  showError(err, text) {
    const d = err.detail || {};
    this.clearError();
    this.input.classList.add('bad');
    const q = text ?? this.input.value;
    if (d.line != null) {
      this.error.dataset.line = d.line;
      this.error.dataset.col = d.col;
    }
    let start = d.start != null ? byteToIndex(q, d.start) : null;
    let end = d.end != null ? byteToIndex(q, d.end) : null;
    if (start == null && d.line != null) {
      const lines = q.split('\n');
      start = lines.slice(0, d.line - 1).reduce((a, l) => a + l.length + 1, 0) + (d.col - 1);
      end = start + 1;
    }
    if (start != null && q === this.input.value) {
      if (end <= start) end = start + 1;
      const mark = h('mark', { class: 'kfl-err-span', dataset: { start } }, q.slice(start, end) || ' ');
      this.mirror.replaceChildren(q.slice(0, start), mark, q.slice(end));
    }
    const where = d.line != null ? `line ${d.line}, column ${d.col}: ` : '';
    this.error.append(
      h('div', { class: 'err-msg' }, h('span', { class: 'err-class' }, err.cls), ' ', where, err.message),
      d.hint ? h('div', { class: 'err-hint' }, 'hint: ', d.hint) : null,
      d.diagnostic ? h('pre', { class: 'err-diag' }, d.diagnostic) : null,
    );
    this.error.classList.add('show');
  }
}
