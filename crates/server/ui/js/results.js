// A query block: SQL (copy, run again, edit and run), the result table (sortable, truncation
// shown with counts), CSV download, and a chart view.
import { api, queryCsv } from './api.js';
import { el, download } from './dom.js';
import { renderChart, defaultSpec } from './chart.js';

function cell(v) {
  if (v === null) return el('td', { class: 'null', text: 'NULL' });
  if (typeof v === 'object') return el('td', { text: v.$blob !== undefined ? `<blob ${atob(v.$blob).length} B>` : `<blob ${v.$blob_bytes} B>` });
  return el('td', { class: typeof v === 'number' ? 'num' : undefined, text: String(v) });
}

export function resultTable(result) {
  const rows = [...result.rows];
  const tbody = el('tbody');
  const fill = () => tbody.replaceChildren(...rows.map((r) => el('tr', {}, r.map(cell))));
  let sorted = { i: -1, dir: 1 };
  const head = el('tr', {}, result.columns.map((c, i) => el('th', {
    scope: 'col', tabindex: 0, title: c.decl_type || '', 'aria-sort': 'none',
    onclick: (e) => {
      sorted = { i, dir: sorted.i === i ? -sorted.dir : 1 };
      rows.sort((a, b) => (a[i] === b[i] ? 0 : a[i] === null ? 1 : b[i] === null ? -1 : a[i] < b[i] ? -sorted.dir : sorted.dir));
      head.querySelectorAll('th').forEach((th) => th.setAttribute('aria-sort', 'none'));
      e.currentTarget.setAttribute('aria-sort', sorted.dir > 0 ? 'ascending' : 'descending');
      fill();
    },
    onkeydown: (e) => { if (e.key === 'Enter') e.currentTarget.click(); },
  }, c.name)));
  fill();
  const shown = result.row_count;
  const total = result.total_rows;
  const note = result.truncated
    ? el('p', { class: 'note warn', text: `Showing ${shown} of ${total ?? 'more than ' + shown} rows — the result was truncated by the row cap.` })
    : el('p', { class: 'note', text: `${shown} row${shown === 1 ? '' : 's'} · ${result.elapsed_ms?.toFixed?.(1) ?? '?'} ms` });
  return el('div', {}, el('div', { class: 'table-wrap' }, el('table', { class: 'result' }, el('thead', {}, head), tbody)), note);
}

/**
 * A collapsible block for one query. `result` may be null (not run yet, or failed: `error`).
 * Returns {node, setResult, showChart}.
 */
export function queryBlock(sql, { result = null, error = null, database, title = 'Query' } = {}) {
  const body = el('div', { class: 'body' });
  const pre = el('pre', { class: 'sql', text: sql });
  const view = el('div', { class: 'view' });
  let current = result;
  let chartSpec = null;
  let mode = 'table';

  const render = () => {
    if (error) { view.replaceChildren(el('p', { class: 'error', role: 'alert', text: error })); return; }
    if (!current) { view.replaceChildren(el('p', { class: 'note', text: 'running…' })); return; }
    if (mode === 'chart') {
      const spec = chartSpec || defaultSpec(current, chartKind.value);
      view.replaceChildren(spec ? el('div', { class: 'chart' }, renderChart(spec, current)) : el('p', { class: 'note', text: 'Nothing to chart: no numeric column.' }));
    } else {
      view.replaceChildren(resultTable(current));
    }
  };

  const run = async (text) => {
    error = null; current = null; render();
    try {
      current = await api('/api/query', { method: 'POST', body: { sql: text, database } });
    } catch (e) {
      error = `${e.code}: ${e.message}`;
    }
    render();
  };

  const chartKind = el('select', { 'aria-label': 'Chart type', onchange: () => { chartSpec = chartSpec && { ...chartSpec, kind: chartKind.value }; mode = 'chart'; render(); } },
    ['bar', 'line', 'pie', 'scatter'].map((k) => el('option', { value: k, text: k })));
  const actions = el('div', { class: 'actions' },
    el('button', { type: 'button', onclick: () => navigator.clipboard?.writeText(pre.textContent) }, 'Copy SQL'),
    el('button', { type: 'button', onclick: () => run(pre.textContent) }, 'Run again'),
    el('button', { type: 'button', onclick: () => {
      const editor = el('textarea', { class: 'sql-edit', rows: 4, 'aria-label': 'Edit SQL' });
      editor.value = pre.textContent;
      const go = el('button', { type: 'button', class: 'primary', onclick: () => { pre.textContent = editor.value; editor.remove(); go.remove(); run(editor.value); } }, 'Run');
      pre.after(editor, go);
      editor.focus();
    } }, 'Edit and run'),
    el('button', { type: 'button', class: 'csv', onclick: async () => {
      try { download(await queryCsv(pre.textContent, database), 'query.csv'); } catch (e) { error = `${e.code}: ${e.message}`; render(); }
    } }, 'Download CSV'),
    el('button', { type: 'button', class: 'toggle-chart', onclick: () => { mode = mode === 'chart' ? 'table' : 'chart'; render(); } }, 'Table / chart'),
    chartKind);
  body.append(pre, actions, view);
  const summary = el('summary', {}, title);
  const node = el('details', { class: 'tool query', open: true }, summary, body);
  render();
  return {
    node,
    setResult(r, err) { current = r; error = err; render(); },
    showChart(spec) { chartSpec = spec; chartKind.value = spec.kind; mode = 'chart'; render(); },
    get result() { return current; },
  };
}
