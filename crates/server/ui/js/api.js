// REST and WebSocket access. The token (token mode) lives in sessionStorage only.

const TOKEN_KEY = 'sqlmatic.token';

export const auth = {
  get token() { return sessionStorage.getItem(TOKEN_KEY); },
  set(token) { sessionStorage.setItem(TOKEN_KEY, token); },
  clear() { sessionStorage.removeItem(TOKEN_KEY); },
};

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

function headers(json) {
  const h = {};
  if (json) h['Content-Type'] = 'application/json';
  if (auth.token) h.Authorization = `Bearer ${auth.token}`;
  return h;
}

async function failure(resp) {
  let code = 'http_error';
  let message = `${resp.status} ${resp.statusText}`;
  try {
    const body = await resp.json();
    code = body.error?.code ?? code;
    message = body.error?.message ?? message;
  } catch { /* not JSON */ }
  return new ApiError(resp.status, code, message);
}

/** JSON request; throws ApiError with the server's code and message. */
export async function api(path, { method = 'GET', body } = {}) {
  const resp = await fetch(path, { method, headers: headers(body !== undefined), body: body === undefined ? undefined : JSON.stringify(body) });
  if (!resp.ok) throw await failure(resp);
  if (resp.status === 204) return null;
  return resp.json();
}

/** A query's rows as CSV, for download. */
export async function queryCsv(sql, database) {
  const resp = await fetch('/api/query?format=csv', { method: 'POST', headers: headers(true), body: JSON.stringify({ sql, database }) });
  if (!resp.ok) throw await failure(resp);
  return resp.blob();
}

/** The live connection: reconnects, resubscribes, and hands every event to `onEvent`. */
export class Live {
  constructor(onEvent, onState) {
    this.onEvent = onEvent;
    this.onState = onState;
    this.topics = new Set();
    this.queue = [];
    this.retry = 500;
    this.connect();
  }

  connect() {
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    // browsers cannot set headers on WebSockets: the token travels as a subprotocol
    const protocols = auth.token ? ['sqlmatic', `bearer.${auth.token}`] : ['sqlmatic'];
    this.ws = new WebSocket(`${scheme}://${location.host}/ws`, protocols);
    this.ws.onopen = () => {
      this.retry = 500;
      this.onState(true);
      if (this.topics.size) this.raw({ action: 'subscribe', topics: [...this.topics] });
      for (const m of this.queue.splice(0)) this.raw(m);
    };
    this.ws.onmessage = (e) => {
      try { this.onEvent(JSON.parse(e.data)); } catch (err) { console.error('bad event', err); }
    };
    this.ws.onclose = () => {
      this.onState(false);
      setTimeout(() => this.connect(), this.retry);
      this.retry = Math.min(this.retry * 2, 10000);
    };
  }

  raw(message) {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(message));
    else this.queue.push(message);
  }

  subscribe(topics) {
    topics.forEach((t) => this.topics.add(t));
    this.raw({ action: 'subscribe', topics });
  }

  unsubscribe(topics) {
    topics.forEach((t) => this.topics.delete(t));
    this.raw({ action: 'unsubscribe', topics });
  }
}
