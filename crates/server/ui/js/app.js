// Wires the page: sign-in, database picker, threads sidebar, chat, structure, metrics, theme.
import { api, auth, Live } from './api.js';
import { el } from './dom.js';
import { Chat, loadThread } from './chat.js';
import { Structure } from './structure.js';
import { renderMetrics } from './metrics.js';
import { renderVerified } from './knowledge.js';

const $ = (id) => document.getElementById(id);

const state = { me: null, databases: [], database: null, threads: [], current: null, live: null, busy: false };

function applyTheme(theme) {
  document.documentElement.dataset.theme = theme;
  localStorage.setItem('sqlmatic.theme', theme);
}
applyTheme(localStorage.getItem('sqlmatic.theme') ?? (matchMedia('(prefers-color-scheme: dark)').matches ? 'dark' : 'light'));
$('theme-button').addEventListener('click', () => applyTheme(document.documentElement.dataset.theme === 'dark' ? 'light' : 'dark'));

function showLogin(message) {
  $('app').hidden = true;
  $('login').hidden = false;
  $('login-error').hidden = !message;
  $('login-error').textContent = message ?? '';
  $('token-input').focus();
}

$('login-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  auth.set($('token-input').value.trim());
  try {
    await api('/api/me');
    location.reload();
  } catch (err) {
    auth.clear();
    showLogin(err.status === 401 ? 'That token was refused.' : err.message);
  }
});
$('logout-button').addEventListener('click', () => { auth.clear(); location.reload(); });

function setBusy(busy) {
  state.busy = busy;
  $('send').hidden = busy;
  $('stop').hidden = !busy;
  $('question').disabled = false;
}

function renderThreads() {
  $('thread-list').replaceChildren(...state.threads.map((t) => el('li', {},
    el('button', { type: 'button', 'aria-current': state.current?.id === t.id ? 'true' : 'false', title: t.title, onclick: () => openThread(t.id) }, t.title))));
}

async function refreshThreads() {
  const list = await api('/api/threads?limit=100');
  state.threads = list.threads;
  renderThreads();
}

async function openThread(id) {
  const thread = await loadThread(id);
  if (state.current) state.live.unsubscribe([`thread:${state.current.id}`]);
  state.current = thread;
  state.live.subscribe([`thread:${id}`]);
  $('thread-title').textContent = thread.title;
  $('rename-thread').hidden = false;
  $('delete-thread').hidden = false;
  if (thread.database !== state.database) selectDatabase(thread.database);
  chat.show(thread);
  renderThreads();
}

function newThread() {
  if (state.current) state.live.unsubscribe([`thread:${state.current.id}`]);
  state.current = null;
  $('thread-title').textContent = 'New thread';
  $('rename-thread').hidden = true;
  $('delete-thread').hidden = true;
  chat.clear();
  renderThreads();
  $('question').focus();
  showSuggestions();
}

async function showSuggestions() {
  const database = state.database;
  if (!database) return;
  try {
    const s = await api(`/api/databases/${encodeURIComponent(database)}/suggestions`);
    if (state.current || state.database !== database) return;
    chat.suggest(s.questions, (text) => { $('question').value = text; $('composer').requestSubmit(); });
  } catch {
    // suggestions are a convenience: the empty thread works without them
  }
}

async function selectDatabase(name) {
  if (state.database) state.live.unsubscribe([`database:${state.database}`]);
  state.database = name;
  $('database-picker').value = name;
  structure.engine = state.databases.find((d) => d.name === name)?.engine;
  structure.update(null);
  state.live.subscribe([`database:${name}`]);
}

const structure = new Structure($('structure'), $('structure-filter'));

// Reads the whole structure when a patch does not fit the one shown (never expected: the
// server sends the whole structure on subscribe and patches from it).
async function reloadStructure(name) {
  const schema = await api(`/api/database/structure?database=${encodeURIComponent(name)}`);
  if (state.database === name) structure.update(schema);
}
let chat;

function onEvent(e) {
  const p = e.payload;
  switch (e.event) {
    case 'database_update':
      if (p.database !== state.database) break;
      if (p.schema) structure.update(p.schema);
      else if (!structure.patch(p.schema_version, p.patch)) reloadStructure(p.database).catch(() => {}); // the next update tries again
      break;
    case 'thread_created':
      if (!state.threads.some((t) => t.id === p.id)) state.threads.unshift(p);
      renderThreads();
      break;
    case 'message_stream':
      if (!state.current && chat.turn) {
        // the first event of a question asked in a new thread tells us which thread it is
        state.current = { id: p.thread_id, title: state.threads.find((t) => t.id === p.thread_id)?.title ?? 'New thread' };
        $('thread-title').textContent = state.current.title;
        $('rename-thread').hidden = false;
        $('delete-thread').hidden = false;
        renderThreads();
      }
      if (state.current?.id === p.thread_id) chat.event(p);
      break;
    case 'metrics_update':
      renderMetrics($('metrics'), p);
      break;
    case 'error':
      if (state.busy) chat.failed(`${p.code}: ${p.message}`);
      else console.warn('server error event', p);
      break;
    default:
      break;
  }
}

$('composer').addEventListener('submit', (e) => {
  e.preventDefault();
  const text = $('question').value.trim();
  if (!text || state.busy) return;
  $('question').value = '';
  setBusy(true);
  chat.ask(text, state.current?.id);
});
$('question').addEventListener('keydown', (e) => {
  if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
    e.preventDefault();
    $('composer').requestSubmit();
  }
});
$('stop').addEventListener('click', () => {
  const id = state.current?.id ?? chat.turn?.threadId;
  if (id) state.live.raw({ action: 'cancel', thread_id: id });
});
$('new-thread').addEventListener('click', newThread);
$('rename-thread').addEventListener('click', async () => {
  const title = prompt('Thread title', state.current?.title ?? '');
  if (!title || !state.current) return;
  const t = await api(`/api/threads/${state.current.id}`, { method: 'PATCH', body: { title } });
  state.current.title = t.title;
  $('thread-title').textContent = t.title;
  await refreshThreads();
});
$('delete-thread').addEventListener('click', async () => {
  if (!state.current || !confirm(`Delete “${state.current.title}”?`)) return;
  await api(`/api/threads/${state.current.id}`, { method: 'DELETE' });
  state.threads = state.threads.filter((t) => t.id !== state.current.id);
  newThread();
});
$('database-picker').addEventListener('change', (e) => { selectDatabase(e.target.value); newThread(); });
$('metrics-button').addEventListener('click', () => $('metrics-dialog').showModal());
$('verified-button').addEventListener('click', () => {
  $('verified-dialog').showModal();
  renderVerified($('verified'), state.database).catch((err) => { $('verified').textContent = err.message; });
});

async function start() {
  try {
    state.me = await api('/api/me');
  } catch (err) {
    if (err.status === 401) return showLogin(auth.token ? 'That token was refused.' : null);
    throw err;
  }
  $('login').hidden = true;
  $('app').hidden = false;
  $('logout-button').hidden = !auth.token;
  state.live = new Live(onEvent, (up) => {
    $('connection').textContent = up ? 'live' : 'offline';
    $('connection').classList.toggle('live', up);
  });
  chat = new Chat({ root: $('messages'), live: state.live, database: () => state.database, onTurnEnd: () => { setBusy(false); refreshThreads(); } });
  state.databases = await api('/api/databases');
  $('database-picker').replaceChildren(...state.databases.map((d) => el('option', { value: d.name, text: d.engine === 'postgresql' ? `${d.name} (PostgreSQL)` : d.name })));
  state.live.subscribe(['threads']);
  if (state.me.admin) {
    $('metrics-button').hidden = false;
    $('verified-button').hidden = false;
    state.live.subscribe(['metrics']);
  }
  await selectDatabase((state.databases.find((d) => d.is_default) ?? state.databases[0])?.name);
  await refreshThreads();
  newThread();
  document.body.dataset.ready = 'true';
}

start().catch((err) => {
  document.body.append(el('p', { class: 'error', role: 'alert', text: `sqlmatic could not start: ${err.message}` }));
});
