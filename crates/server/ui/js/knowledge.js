// Trust in answers: the "verified" badge of an answer that reused a verified query, the thumbs
// that rate an answer (an up proposes its SQL as a candidate), and the admins' list of
// candidates to verify or reject.
import { api } from './api.js';
import { el } from './dom.js';

/** The footer of an answer: badge (when it reused a verified query) and thumbs. */
export function answerFooter(messageId, verified, rating) {
  const footer = el('div', { class: 'answer-footer' });
  if (verified) {
    const how = verified.adapted ? 'adapted from' : 'reused';
    footer.append(el('span', {
      class: 'badge verified',
      title: `This answer ${how} a verified query: “${verified.question}”, checked by ${verified.verified_by}.`,
      text: `✓ verified by ${verified.verified_by}`,
    }));
  }
  if (messageId) footer.append(thumbs(messageId, rating));
  return footer;
}

function thumbs(messageId, rating) {
  const note = el('span', { class: 'note', role: 'status' });
  const buttons = {};
  const mark = (r) => {
    for (const [k, b] of Object.entries(buttons)) b.setAttribute('aria-pressed', String(k === r));
  };
  const rate = async (r) => {
    try {
      const out = await api(`/api/messages/${messageId}/feedback`, { method: 'POST', body: { rating: r } });
      mark(r);
      note.textContent = out.candidate
        ? 'Thanks — proposed as a verified query; an admin can verify it.'
        : 'Thanks for the feedback.';
    } catch (err) {
      note.textContent = `Feedback not saved: ${err.message}`;
    }
  };
  buttons.up = el('button', { type: 'button', class: 'thumb', 'aria-label': 'Good answer', title: 'Right: propose this SQL as a verified query', onclick: () => rate('up') }, '✓ Right');
  buttons.down = el('button', { type: 'button', class: 'thumb', 'aria-label': 'Wrong answer', title: 'Wrong', onclick: () => rate('down') }, '✗ Wrong');
  mark(rating ?? null);
  return el('span', { class: 'thumbs' }, buttons.up, buttons.down, note);
}

/** Fills the admins' dialog: candidates with Verify and Reject, then the verified queries. */
export async function renderVerified(root, database) {
  root.replaceChildren(el('p', { class: 'note', text: 'Loading…' }));
  const [candidates, verified] = await Promise.all([
    api(`/api/verified-queries?status=candidate&database=${encodeURIComponent(database)}`),
    api(`/api/verified-queries?status=verified&database=${encodeURIComponent(database)}`),
  ]);
  const row = (q, actions) => el('li', { class: 'vq', 'data-id': q.id },
    el('p', { class: 'question', text: q.question }),
    el('pre', { class: 'sql', text: q.sql }),
    el('p', { class: 'note', text: q.status === 'candidate' ? `proposed by ${q.proposed_by ?? '?'}` : `verified by ${q.verified_by} (${q.source})` }),
    actions);
  const candidateRow = (q) => {
    const status = el('span', { class: 'note', role: 'status' });
    const act = async (fn, done) => {
      try { await fn(); status.textContent = done; } catch (err) { status.textContent = err.message; }
    };
    return row(q, el('div', { class: 'actions' },
      el('button', { type: 'button', class: 'primary', onclick: () => act(() => api('/api/verified-queries', { method: 'POST', body: { candidate_id: q.id } }), 'Verified: the database ran it, and it is used from now on.') }, 'Verify'),
      el('button', { type: 'button', onclick: () => act(() => api(`/api/verified-queries/${q.id}`, { method: 'DELETE' }), 'Rejected.') }, 'Reject'),
      status));
  };
  root.replaceChildren(
    el('h2', { text: `Candidates (${candidates.length})` }),
    candidates.length ? el('ul', { class: 'vq-list candidates' }, ...candidates.map(candidateRow)) : el('p', { class: 'note', text: 'No candidates: a “Right” on an answer that ran a query proposes one.' }),
    el('h2', { text: `Verified queries (${verified.length})` }),
    el('ul', { class: 'vq-list' }, ...verified.map((q) => row(q, null))),
    el('p', { class: 'note' }, 'Export them to the context file: ', el('a', { href: `/api/databases/${encodeURIComponent(database)}/context/export`, text: 'context YAML' })));
}
