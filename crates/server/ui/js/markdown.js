// The model's answers as Markdown (paragraphs, lists, emphasis, code, tables), safely: `marked`
// (vendored) parses it with raw HTML turned into text, then DOMPurify (vendored) keeps only the
// formatting elements and http(s)/mailto links and returns a DOM fragment. No HTML the model
// writes ever reaches the DOM as markup; the page's content security policy stays strict.

import { Marked } from './vendor/marked.js';
import DOMPurify from './vendor/purify.js';

const escape = (s) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

const marked = new Marked({
  gfm: true,
  async: false,
  renderer: {
    // raw HTML in the answer is shown as the text it is
    html: (token) => escape(token.text ?? token.raw ?? ''),
    // no images: nothing the model writes loads from anywhere
    image: (token) => escape(token.text || token.href || ''),
  },
});

const POLICY = {
  ALLOWED_TAGS: ['p', 'br', 'em', 'strong', 'del', 'code', 'pre', 'ul', 'ol', 'li', 'blockquote',
    'table', 'thead', 'tbody', 'tr', 'th', 'td', 'a', 'h1', 'h2', 'h3', 'h4', 'h5', 'h6', 'hr'],
  ALLOWED_ATTR: ['href', 'title', 'align', 'start'],
  ALLOWED_URI_REGEXP: /^(?:https?:|mailto:)/i,
  RETURN_DOM_FRAGMENT: true,
};

/** Replaces `node`'s children with `text` rendered as safe Markdown. */
export function renderMarkdown(node, text) {
  const fragment = DOMPurify.sanitize(marked.parse(text ?? ''), POLICY);
  for (const a of fragment.querySelectorAll('a')) {
    // a link whose address was refused (javascript:, data:…) stays as its text
    if (!a.getAttribute('href')) { a.replaceWith(...a.childNodes); continue; }
    a.rel = 'noopener noreferrer';
    a.target = '_blank';
  }
  node.replaceChildren(fragment);
}
