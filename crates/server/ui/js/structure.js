// The DatabaseStructure view: tables and views with columns, types, keys, row counts,
// descriptions and masked columns; redrawn live from `database_update` (whole, then patches).

import { el } from './dom.js';

// SQLite counts schema versions up; PostgreSQL's is a fingerprint of its catalogue.
const version = (v, engine) => (engine === 'postgresql' ? `schema #${(v >>> 0).toString(16)}` : `schema v${v}`);

export class Structure {
  constructor(root, filter) {
    this.root = root;
    this.filter = filter;
    this.open = new Set();
    this.schema = null;
    this.engine = null; // `sqlite` or `postgresql`, set by the app with the database
    filter.addEventListener('input', () => this.render());
  }

  update(schema) {
    this.schema = schema;
    this.render();
  }

  // Applies a `database_update` patch: the tables it names, the changed ones replaced. False
  // when it does not fit what this page holds (the caller then reads the whole structure).
  patch(version, patch) {
    const s = this.schema;
    if (!s || s.schema_version !== patch.since) return false;
    const byName = new Map(s.tables.map((t) => [t.name, t]));
    for (const t of patch.tables) byName.set(t.name, t);
    if (!patch.names.every((n) => byName.has(n))) return false;
    this.update({ ...s, schema_version: version, tables: patch.names.map((n) => byName.get(n)), warnings: patch.warnings, ddl: undefined });
    return true;
  }

  jump(table) {
    const card = this.root.querySelector(`[data-table="${CSS.escape(table)}"]`);
    if (!card) return;
    card.open = true;
    this.open.add(table);
    card.scrollIntoView({ behavior: 'smooth', block: 'nearest' });
    card.classList.add('flash');
    setTimeout(() => card.classList.remove('flash'), 1200);
  }

  render() {
    if (!this.schema) { this.root.replaceChildren(el('p', { class: 'note', text: 'Loading…' })); return; }
    const q = this.filter.value.trim().toLowerCase();
    const tables = this.schema.tables.filter((t) => !q || t.name.toLowerCase().includes(q) || t.columns.some((c) => c.name.toLowerCase().includes(q)));
    const warnings = this.schema.warnings || [];
    this.root.replaceChildren(
      el('p', { class: 'note', text: `${this.schema.database} · ${this.schema.tables.length} tables and views · ${version(this.schema.schema_version, this.engine)}` }),
      ...warnings.map((w) => el('p', { class: 'note warning', text: w })),
      ...tables.map((t) => this.card(t)),
    );
  }

  card(t) {
    const fkOf = (c) => t.foreign_keys.find((fk) => fk.columns.includes(c.name));
    const cols = el('ul', { class: 'cols' }, t.columns.map((c) => {
      const fk = fkOf(c);
      return el('li', {},
        el('span', { class: 'name', text: c.name }),
        el('span', { class: 'type', text: c.type || 'ANY' }),
        c.primary_key ? el('span', { class: 'tag pk', text: 'PK' }) : null,
        !c.nullable && !c.primary_key ? el('span', { class: 'tag', text: 'NOT NULL' }) : null,
        c.masked ? el('span', { class: 'tag masked', title: 'reads as NULL in every query', text: 'masked' }) : null,
        c.generated ? el('span', { class: 'tag', title: 'computed from other columns', text: c.generated === 'stored' ? 'generated, stored' : 'generated' }) : null,
        c.hidden ? el('span', { class: 'tag', title: 'hidden column: select it by name', text: 'hidden' }) : null,
        fk ? el('a', { class: 'fk', href: `#table-${fk.references_table}`, onclick: (e) => { e.preventDefault(); this.jump(fk.references_table); }, text: `→ ${fk.references_table}` }) : null,
        c.description ? el('span', { class: 'desc', text: c.description }) : null);
    }));
    const rows = t.row_count === null || t.row_count === undefined ? ''
      : t.row_count_exact ? `${t.row_count.toLocaleString()} rows` : `~${t.row_count.toLocaleString()} rows`;
    const labels = { view: 'view', materialized_view: `materialized view · ${rows}`, foreign_table: `foreign table · ${rows}`, virtual: `${t.module || 'virtual'} · ${rows}` };
    const kind = t.error ? 'broken' : labels[t.kind] ?? rows;
    const card = el('details', { class: t.error ? 'table-card broken' : 'table-card', 'data-table': t.name, id: `table-${t.name}`, open: this.open.has(t.name) },
      el('summary', {}, el('span', { text: t.name }), el('span', { class: 'kind', title: t.row_count_exact === false && t.row_count !== null ? 'estimate; an exact count is running' : '', text: kind })),
      t.error ? el('p', { class: 'object-error', text: `Cannot be queried: ${t.error.message}` }) : null,
      t.description ? el('p', { class: 'desc', text: t.description }) : null,
      t.shadow_tables && t.shadow_tables.length ? el('p', { class: 'note', text: `stores its data in ${t.shadow_tables.join(', ')}` }) : null,
      t.partitions && t.partitions.length ? el('p', { class: 'note', text: `partitioned into ${t.partitions.join(', ')}` }) : null,
      cols);
    card.addEventListener('toggle', () => (card.open ? this.open.add(t.name) : this.open.delete(t.name)));
    return card;
  }
}
