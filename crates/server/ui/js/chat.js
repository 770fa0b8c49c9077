// The chat pane: a thread's messages, and a turn as it streams in (answer text, each query with
// its SQL and result, charts, approvals), with Stop.
import { api } from './api.js';
import { el } from './dom.js';
import { renderMarkdown } from './markdown.js';
import { queryBlock } from './results.js';
import { answerFooter } from './knowledge.js';

const STATUS_TEXT = { cancelled: 'Stopped — partial answer', error: 'The answer failed', interrupted: 'Interrupted — the server stopped', pending: 'Answering…' };

function parseJson(text) { try { return JSON.parse(text); } catch { return null; } }

export class Chat {
  constructor({ root, live, database, onTurnEnd }) {
    this.root = root;
    this.live = live;
    this.database = database;
    this.onTurnEnd = onTurnEnd;
    this.turn = null; // the answer being streamed: {messageId, node, answer, blocks, queries}
  }

  clear() {
    this.root.replaceChildren(el('p', { class: 'note', text: 'Ask a question about your data. The assistant reads the schema, runs read-only SQL and shows its work.' }));
    this.turn = null;
  }

  /** Offers questions to start with while the thread is still empty; `pick` asks one. */
  suggest(questions, pick) {
    if (!questions.length || !this.root.querySelector(':scope > p.note')) return;
    this.root.querySelector(':scope > .suggestions')?.remove();
    this.root.append(el('div', { class: 'suggestions' },
      ...questions.map((q) => el('button', { type: 'button', class: 'suggestion', onclick: () => pick(q) }, q))));
  }

  /** Renders a stored thread: questions, answers, and each answer's tool calls. */
  show(thread) {
    this.root.replaceChildren();
    const children = new Map();
    for (const m of thread.messages) {
      if (m.parent_id) (children.get(m.parent_id) ?? children.set(m.parent_id, []).get(m.parent_id)).push(m);
    }
    for (const m of thread.messages.filter((x) => !x.parent_id)) {
      if (m.role === 'user') this.root.append(el('div', { class: 'msg user', text: m.content }));
      else if (m.role === 'assistant') this.root.append(this.storedAnswer(m, children.get(m.id) ?? [], thread.database));
    }
    this.root.scrollTop = this.root.scrollHeight;
  }

  storedAnswer(m, kids, database) {
    const node = el('div', { class: 'msg assistant', 'data-message-id': m.id });
    if (m.queries?.length || m.charts?.length) this.storedTurn(node, m, kids, database);
    else this.storedTranscript(node, kids, database);
    const answer = el('div', { class: 'answer' });
    renderMarkdown(answer, m.content);
    node.append(answer);
    if (m.status !== 'complete') node.append(el('p', { class: `status ${m.status === 'error' ? 'error' : ''}`, text: STATUS_TEXT[m.status] ?? m.status }));
    else node.append(answerFooter(m.id, m.verified_query, m.feedback));
    return node;
  }

  /** An answer's stored turn: its queries and charts exactly as the live turn showed them. */
  storedTurn(node, m, kids, database) {
    const succeeded = [];
    for (const q of m.queries ?? []) {
      const block = queryBlock(q.sql, { result: q.error ? null : q, error: q.error ? `${q.error.code}: ${q.error.message}` : null, database });
      if (!q.error) succeeded.push(block);
      node.append(block.node);
    }
    for (const c of m.charts ?? []) succeeded[c.query]?.showChart(c);
    // the other tools' calls, as in the transcript
    for (const k of kids.filter((x) => x.role === 'assistant')) {
      for (const call of k.tool_calls ?? []) {
        if (call.name === 'execute_query' || call.name === 'show_chart') continue;
        node.append(el('details', { class: 'tool' }, el('summary', { text: `${call.name} ${call.arguments === '{}' ? '' : call.arguments}` })));
      }
    }
  }

  /** Answers stored before turns kept their queries: rebuilt from the transcript. */
  storedTranscript(node, kids, database) {
    const results = new Map(kids.filter((k) => k.role === 'tool').map((k) => [k.tool_calls?.tool_call_id, parseJson(k.content)]));
    for (const k of kids.filter((x) => x.role === 'assistant')) {
      for (const call of k.tool_calls ?? []) {
        const args = parseJson(call.arguments) ?? {};
        const out = results.get(call.id);
        if (call.name === 'execute_query' && args.sql) {
          // stored results are what the model saw (bounded); Run again fetches the full rows
          const r = out && !out.error ? { columns: (out.columns ?? []).map((n) => ({ name: n })), rows: out.rows ?? [], row_count: out.rows_shown ?? 0, total_rows: out.rows_total, truncated: !!out.truncated } : null;
          node.append(queryBlock(args.sql, { result: r, error: out?.error ? `${out.error.code}: ${out.error.message}` : null, database }).node);
        } else {
          node.append(el('details', { class: 'tool' }, el('summary', { text: `${call.name} ${call.arguments === '{}' ? '' : call.arguments}` })));
        }
      }
    }
  }

  /** Starts a turn: shows the question, sends it over the WebSocket. */
  ask(text, threadId) {
    this.root.querySelector(':scope > p.note')?.remove();
    this.root.querySelector(':scope > .suggestions')?.remove();
    this.root.append(el('div', { class: 'msg user', text }));
    this.turn = { messageId: null, node: null, answer: null, blocks: new Map(), queries: [], threadId };
    this.live.raw({ action: 'chat', thread_id: threadId ?? undefined, message: text, database: threadId ? undefined : this.database() });
  }

  ensureTurnNode(messageId) {
    if (!this.turn) this.turn = { blocks: new Map(), queries: [] };
    if (!this.turn.node) {
      this.turn.messageId = messageId;
      this.turn.answer = el('div', { class: 'answer' });
      this.turn.status = el('p', { class: 'status', text: STATUS_TEXT.pending });
      this.turn.node = el('div', { class: 'msg assistant', 'data-message-id': messageId }, this.turn.answer, this.turn.status);
      this.root.append(this.turn.node);
    }
    return this.turn;
  }

  /** A `message_stream` payload for the shown thread. */
  event(p) {
    const turn = this.ensureTurnNode(p.message_id);
    const stick = this.root.scrollHeight - this.root.scrollTop - this.root.clientHeight < 40;
    switch (p.type) {
      case 'delta':
        // the whole answer so far is rendered again, at most once a frame
        turn.text = (turn.text ?? '') + p.text;
        if (!turn.frame) {
          turn.frame = requestAnimationFrame(() => { turn.frame = null; renderMarkdown(turn.answer, turn.text); });
        }
        break;
      case 'tool_call': {
        if (p.name === 'execute_query') {
          const block = queryBlock(p.arguments?.sql ?? String(p.arguments), { database: this.database(), title: 'Query' });
          turn.blocks.set(p.id, block);
          turn.answer.before(block.node);
        } else if (p.name !== 'show_chart') {
          const d = el('details', { class: 'tool' }, el('summary', { text: `${p.name}…` }));
          turn.blocks.set(p.id, { node: d, tool: p.name });
          turn.answer.before(d);
        }
        break;
      }
      case 'tool_result': {
        const block = turn.blocks.get(p.id);
        if (block?.setResult) {
          block.setResult(p.result ?? null, p.ok ? null : `${p.error?.code}: ${p.error?.message}`);
          if (p.ok && p.result) turn.queries.push(block);
        } else if (block?.node) {
          block.node.querySelector('summary').textContent = `${block.tool} ${p.ok ? '✓' : '✗ ' + (p.error?.message ?? '')}`;
        } else if (p.ok && p.result?.kind) {
          const target = turn.queries[p.result.query] ?? turn.queries.at(-1);
          target?.showChart(p.result);
        }
        break;
      }
      case 'approval_required': {
        const box = el('div', { class: 'approval', role: 'alert' },
          el('p', { text: `The assistant wants to change ${p.database}:` }),
          el('pre', { class: 'sql', text: p.sql }),
          el('div', { class: 'actions' },
            el('button', { type: 'button', class: 'primary', onclick: () => { this.live.raw({ action: 'approve', digest: p.digest }); box.replaceChildren(el('p', { class: 'note', text: 'Approved.' })); } }, 'Approve'),
            el('button', { type: 'button', onclick: () => { this.live.raw({ action: 'reject', digest: p.digest, reason: 'rejected in the web app' }); box.replaceChildren(el('p', { class: 'note', text: 'Rejected.' })); } }, 'Reject')));
        turn.answer.before(box);
        break;
      }
      case 'done':
        if (turn.frame) cancelAnimationFrame(turn.frame);
        turn.frame = null;
        renderMarkdown(turn.answer, turn.text || p.answer || '');
        turn.status.textContent = p.status === 'complete' ? '' : STATUS_TEXT[p.status] ?? p.status;
        if (p.status === 'complete') {
          turn.status.remove();
          turn.node.append(answerFooter(p.message_id, p.verified_query, null));
        }
        this.end();
        break;
      case 'error':
        turn.status.textContent = `${STATUS_TEXT.error}: ${p.message}`;
        turn.status.classList.add('error');
        this.end();
        break;
      default:
        break;
    }
    if (stick) this.root.scrollTop = this.root.scrollHeight;
  }

  /** A failure to start the turn (an `error` event while no turn streams). */
  failed(message) {
    this.root.append(el('p', { class: 'status error', role: 'alert', text: message }));
    this.end();
  }

  end() {
    this.turn = null;
    this.onTurnEnd?.();
  }
}

export async function loadThread(id) {
  return api(`/api/threads/${id}`);
}
