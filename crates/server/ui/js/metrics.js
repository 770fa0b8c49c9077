// The metrics panel, fed by `metrics_update` (admins).
import { el } from './dom.js';

export function renderMetrics(root, m) {
  const latency = Object.entries(m.http?.latency ?? {}).sort((a, b) => b[1].count - a[1].count).slice(0, 6);
  const row = (k, v) => [el('dt', { text: k }), el('dd', { text: String(v) })];
  root.replaceChildren(
    el('h2', { text: 'Metrics' }),
    el('dl', { class: 'metrics' },
      row('uptime', `${m.uptime_seconds ?? 0} s`),
      row('HTTP requests', m.http?.requests_total ?? 0),
      row('WebSocket connections', m.websocket?.connections ?? 0),
      row('events sent', m.websocket?.events_sent ?? 0),
      row('queries run / blocked / failed / timed out', `${m.queries?.run ?? 0} / ${m.queries?.blocked ?? 0} / ${m.queries?.failed ?? 0} / ${m.queries?.timed_out ?? 0}`),
      row('query latency p50 / p99', `${m.queries?.latency?.p50_ms ?? '–'} / ${m.queries?.latency?.p99_ms ?? '–'} ms`),
      row('threads / messages', `${m.threads ?? 0} / ${m.messages ?? 0}`)),
    el('h3', { text: 'Busiest routes (p50 / p99 ms)' }),
    el('dl', { class: 'metrics' }, latency.flatMap(([route, l]) => row(route, `${l.count} · ${l.p50_ms ?? '–'} / ${l.p99_ms ?? '–'}`))),
  );
}
