// Renders a validated chart spec ({kind, x, y[], series?, title?}) over a query result as SVG.
import { svg } from './dom.js';

const COLORS = ['#2f6feb', '#e8590c', '#2b8a3e', '#ae3ec9', '#f08c00', '#0c8599', '#c92a2a', '#5c940d'];
const W = 640, H = 320, M = { l: 56, r: 16, t: 28, b: 56 };

function col(result, name) { return result.columns.findIndex((c) => c.name === name); }
const num = (v) => (typeof v === 'number' ? v : Number(v));
const label = (v) => (v === null ? '∅' : String(v)).slice(0, 18);

/** Series as [{name, points: [{x, y}]}]. */
function seriesOf(spec, result) {
  const xi = col(result, spec.x);
  const si = spec.series ? col(result, spec.series) : -1;
  const out = new Map();
  for (const yName of spec.y) {
    const yi = col(result, yName);
    for (const row of result.rows) {
      const key = si >= 0 ? `${label(row[si])}${spec.y.length > 1 ? ` · ${yName}` : ''}` : yName;
      if (!out.has(key)) out.set(key, []);
      out.get(key).push({ x: row[xi], y: num(row[yi]) });
    }
  }
  return [...out].map(([name, points]) => ({ name, points }));
}

export function renderChart(spec, result) {
  const root = svg('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': spec.title || `${spec.kind} chart of ${spec.y.join(', ')} by ${spec.x}` });
  if (spec.title) root.append(svg('text', { x: W / 2, y: 18, 'text-anchor': 'middle', 'font-weight': 'bold' }, spec.title));
  const series = seriesOf(spec, result);
  if (spec.kind === 'pie') return pie(root, series[0]?.points ?? []);
  const all = series.flatMap((s) => s.points).filter((p) => Number.isFinite(p.y));
  const ymax = Math.max(0, ...all.map((p) => p.y));
  const ymin = Math.min(0, ...all.map((p) => p.y));
  const y = (v) => M.t + (H - M.t - M.b) * (1 - (v - ymin) / ((ymax - ymin) || 1));
  const numericX = spec.kind === 'scatter' && all.every((p) => typeof p.x === 'number');
  const cats = [...new Set(series.flatMap((s) => s.points.map((p) => String(p.x))))];
  const xmin = numericX ? Math.min(...all.map((p) => p.x)) : 0;
  const xmax = numericX ? Math.max(...all.map((p) => p.x)) : 1;
  const band = (W - M.l - M.r) / Math.max(cats.length, 1);
  const x = (v) => (numericX ? M.l + (W - M.l - M.r) * ((v - xmin) / ((xmax - xmin) || 1)) : M.l + band * (cats.indexOf(String(v)) + 0.5));
  root.append(svg('line', { class: 'axis', x1: M.l, y1: y(0), x2: W - M.r, y2: y(0) }));
  root.append(svg('line', { class: 'axis', x1: M.l, y1: M.t, x2: M.l, y2: H - M.b }));
  for (const v of [ymin, (ymin + ymax) / 2, ymax]) {
    root.append(svg('text', { x: M.l - 6, y: y(v) + 4, 'text-anchor': 'end' }, Number(v.toPrecision(4)).toLocaleString()));
  }
  if (!numericX) {
    const step = Math.ceil(cats.length / 16);
    cats.forEach((c, i) => {
      if (i % step) return;
      const cx = x(c);
      root.append(svg('text', { x: cx, y: H - M.b + 14, 'text-anchor': 'end', transform: `rotate(-35 ${cx} ${H - M.b + 14})` }, label(c)));
    });
  }
  series.forEach((s, si) => {
    const color = COLORS[si % COLORS.length];
    if (spec.kind === 'bar') {
      const w = (band * 0.8) / series.length;
      for (const p of s.points) {
        const top = y(Math.max(p.y, 0));
        root.append(svg('rect', { x: x(p.x) - band * 0.4 + w * si, y: top, width: Math.max(w - 1, 1), height: Math.abs(y(p.y) - y(0)), fill: color },
          svg('title', {}, `${label(p.x)}: ${p.y}`)));
      }
    } else if (spec.kind === 'line') {
      root.append(svg('polyline', { fill: 'none', stroke: color, 'stroke-width': 2, points: s.points.map((p) => `${x(p.x)},${y(p.y)}`).join(' ') }));
    } else {
      for (const p of s.points) root.append(svg('circle', { cx: x(p.x), cy: y(p.y), r: 3, fill: color }, svg('title', {}, `${label(p.x)}: ${p.y}`)));
    }
  });
  legend(root, series.map((s) => s.name));
  return root;
}

function legend(root, names) {
  if (names.length < 2) return;
  names.slice(0, 8).forEach((n, i) => {
    root.append(svg('rect', { x: W - M.r - 120, y: M.t + i * 14, width: 10, height: 10, fill: COLORS[i % COLORS.length] }));
    root.append(svg('text', { x: W - M.r - 106, y: M.t + i * 14 + 9 }, label(n)));
  });
}

function pie(root, points) {
  const total = points.reduce((a, p) => a + (Number.isFinite(p.y) && p.y > 0 ? p.y : 0), 0) || 1;
  const cx = W / 2, cy = H / 2 + 8, r = Math.min(W, H) / 2 - 40;
  let angle = -Math.PI / 2;
  points.forEach((p, i) => {
    const share = (Number.isFinite(p.y) && p.y > 0 ? p.y : 0) / total;
    const end = angle + share * 2 * Math.PI;
    const large = share > 0.5 ? 1 : 0;
    const path = `M ${cx} ${cy} L ${cx + r * Math.cos(angle)} ${cy + r * Math.sin(angle)} A ${r} ${r} 0 ${large} 1 ${cx + r * Math.cos(end)} ${cy + r * Math.sin(end)} Z`;
    root.append(svg('path', { d: path, fill: COLORS[i % COLORS.length] }, svg('title', {}, `${label(p.x)}: ${p.y} (${(share * 100).toFixed(1)}%)`)));
    angle = end;
  });
  legend(root, points.map((p) => label(p.x)).concat(points.length < 2 ? [''] : []));
  return root;
}

/** A default chart for a result: first column on x, first numeric column on y. */
export function defaultSpec(result, kind = 'bar') {
  const numeric = result.columns.map((c, i) => result.rows.length > 0 && result.rows.every((r) => r[i] === null || typeof r[i] === 'number'));
  const yi = numeric.findIndex((n, i) => n && i > 0);
  if (result.columns.length < 2 || yi < 0) return null;
  return { kind, x: result.columns[0].name, y: [result.columns[yi].name] };
}
