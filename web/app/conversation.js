// The conversation pane: the open chat's messages, paged back 50 at a
// time, its attachments, and the composer.
import { loadChats } from "/web/app/chats.js";
import { $, clear, dayKey, dayLabel, fmtSize, formats, h, show, toast } from "/web/app/dom.js";
import { draftFor, setDraft } from "/web/app/drafts.js";
import { openGroup } from "/web/app/groups.js";
import { markCurrent, openPane } from "/web/app/nav.js";
import { openContact, renderSafety } from "/web/app/safety.js";
import { chatName, P, ui } from "/web/app/state.js";
import { words } from "/web/app/words.js";

const PAGE = 50;
// COMPOSER_MAX_ROWS is how far the composer grows before it scrolls.
const COMPOSER_MAX_ROWS = 6;

export async function openChat(id) {
  ui.chat = null;
  openPane('chat', false);
  ui.chat = id;
  ui.msgs = new Map();
  ui.oldest = null;
  ui.more = true;
  clear($('message-list'));
  $('chat-title').textContent = chatName(id);
  $('btn-contact').textContent = id.startsWith('g:') ? 'Group info' : 'Contact info';
  $('composer-error').textContent = '';
  $('composer-text').value = draftFor(id); // each chat has its own draft
  fitComposer();
  renderSafety();
  markCurrent();
  await loadLatest();
  $('composer-text').focus();
  markRead();
}

// A chat opens from its button in the chat list (chats.js draws them).
$('chat-list').addEventListener('click', (e) => {
  const btn = e.target.closest('button[data-chat]');
  if (btn) openChat(btn.dataset.chat);
});

export function markRead() {
  if (!ui.chat || document.hidden) return;
  const c = ui.chats.find((x) => x.id === ui.chat);
  if (c && c.unread) P.markRead(ui.chat).then(loadChats, () => {});
}

export async function loadLatest() {
  const id = ui.chat;
  let page;
  try {
    page = await P.messages(id, { limit: PAGE });
  } catch (err) {
    toast(words(err));
    return;
  }
  if (id !== ui.chat) return;
  const box = $('messages');
  const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 80;
  const first = ui.msgs.size === 0;
  for (const m of page) ui.msgs.set(m.id, m);
  if (first) {
    ui.oldest = page.length ? page[0].id : null;
    ui.more = page.length === PAGE;
  }
  renderMessages();
  if (first || atBottom) box.scrollTop = box.scrollHeight;
}

async function loadOlder() {
  if (!ui.chat || !ui.more || !ui.oldest || ui.loadingOlder) return;
  ui.loadingOlder = true;
  const id = ui.chat;
  try {
    const page = await P.messages(id, { before: ui.oldest, limit: PAGE });
    if (id !== ui.chat) return;
    const box = $('messages');
    const fromBottom = box.scrollHeight - box.scrollTop;
    for (const m of page) ui.msgs.set(m.id, m);
    if (page.length) ui.oldest = page[0].id;
    ui.more = page.length === PAGE;
    renderMessages();
    box.scrollTop = box.scrollHeight - fromBottom; // keep the reader's place
  } catch (err) {
    toast(words(err));
  } finally {
    ui.loadingOlder = false;
  }
}
$('messages').addEventListener('scroll', () => { if ($('messages').scrollTop < 40) loadOlder(); }, { passive: true });
$('btn-older').addEventListener('click', loadOlder);

const tickWords = { pending: 'Waiting to send', sent: 'Sent', delivered: 'Delivered', read: 'Read' };
const tickMarks = { pending: '◷', sent: '✓', delivered: '✓✓', read: '✓✓' };

function deviceName(id) {
  const d = ui.devices.find((x) => x.id === id);
  return d ? d.name : 'another device';
}

export function renderMessages() {
  const list = $('message-list');
  const sorted = [...ui.msgs.values()].sort((a, b) => a.sentAt - b.sentAt || (a.id < b.id ? -1 : 1));
  clear(list);
  const group = ui.chat && ui.chat.startsWith('g:');
  let day = '';
  for (const m of sorted) {
    const k = dayKey(m.sentAt);
    if (k !== day) {
      day = k;
      list.append(h('li', { class: 'day' }, h('span', { text: dayLabel(m.sentAt) })));
    }
    list.append(renderMessage(m, group));
  }
  show($('btn-older'), ui.more && sorted.length > 0);
}

/**
 * @param {import("./types.js").Message} m
 * @param {boolean} group
 */
function renderMessage(m, group) {
  const meId = ui.st && ui.st.deviceId;
  const kids = [];
  if (group && !m.outgoing) kids.push(h('span', { class: 'from', text: m.from }));
  if (m.attachment) kids.push(renderAttachment(m));
  if (m.text) kids.push(h('p', { class: 'text', text: m.text }));
  const meta = h('span', { class: 'meta' });
  if (m.outgoing && m.fromDevice && meId && m.fromDevice !== meId) {
    meta.append(h('span', { class: 'via', text: 'from ' + deviceName(m.fromDevice) + ' · ' }));
  }
  meta.append(h('time', { datetime: new Date(m.sentAt).toISOString(), text: formats().time.format(m.sentAt) }));
  if (m.outgoing) {
    meta.append(h('span', { class: 'tick tick-' + m.status, 'data-status': m.status, title: tickWords[m.status] || m.status, 'aria-label': tickWords[m.status] || m.status, text: ' ' + (tickMarks[m.status] || '') }));
  }
  kids.push(meta);
  return h('li', { class: 'msg ' + (m.outgoing ? 'out' : 'in'), 'data-id': m.id }, h('div', { class: 'bubble' }, ...kids));
}

function renderAttachment(m) {
  const a = m.attachment;
  const box = h('div', { class: 'attachment' });
  const prog = ui.progress.get(m.id);
  if (prog && prog.total && prog.done < prog.total) {
    box.append(h('progress', { max: String(prog.total), value: String(prog.done), 'aria-label': 'Transfer of ' + a.name }));
  }
  const url = ui.urls.get(m.id);
  const isImage = /^image\/(png|jpeg|gif|webp)$/.test(a.type);
  if (url && isImage) {
    box.append(h('img', { src: url, alt: a.name, class: 'preview' }));
  } else if (url) {
    box.append(h('a', { href: url, download: a.name, text: 'Save ' + a.name }));
  } else {
    box.append(h('button', {
      type: 'button', class: 'file', onclick: (e) => fetchAttachment(m, e.currentTarget),
      text: (isImage ? 'Show image ' : 'Open ') + a.name + ' (' + fmtSize(a.size) + ')',
    }));
    if (isImage && a.size < 4 << 20 && !ui.failed?.has(m.id)) queueMicrotask(() => fetchAttachment(m, null));
  }
  return box;
}

async function fetchAttachment(m, btn) {
  if (ui.urls.has(m.id) || ui.fetching?.has(m.id)) return;
  ui.fetching = ui.fetching || new Set();
  ui.fetching.add(m.id);
  if (btn) btn.disabled = true;
  try {
    ui.urls.set(m.id, await P.fileURL(m.id));
    if (ui.msgs.has(m.id)) renderMessages();
  } catch (err) {
    // No automatic retry until the connection comes back (retryFiles);
    // no progress bar for a transfer that is not running.
    (ui.failed = ui.failed || new Set()).add(m.id);
    ui.progress.delete(m.id);
    if (ui.msgs.has(m.id)) renderMessages();
    if (btn) toast(words(err));
  } finally {
    ui.fetching.delete(m.id);
  }
}

// retryFiles lets the images that failed to load while the relay was
// unreachable load again, once the connection is back (shell.js).
export function retryFiles() {
  if (!ui.failed || !ui.failed.size) return;
  ui.failed.clear();
  if (ui.chat) renderMessages();
}

// The composer: Enter sends, Shift+Enter starts a new line.
$('composer-text').addEventListener('keydown', (e) => {
  if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
    e.preventDefault();
    $('composer').requestSubmit();
  }
});
$('composer-text').addEventListener('input', () => {
  if (ui.chat) setDraft(ui.chat, $('composer-text').value);
  fitComposer();
});

// fitComposer grows the composer with its text, a row at a time up to
// COMPOSER_MAX_ROWS, then it scrolls. Rows, not a style height: the CSP
// allows no style attributes.
function fitComposer() {
  const ta = $('composer-text');
  let rows = 1;
  ta.rows = rows;
  while (ta.scrollHeight > ta.clientHeight && rows < COMPOSER_MAX_ROWS) ta.rows = ++rows;
}
$('composer').addEventListener('submit', async (e) => {
  e.preventDefault();
  const text = $('composer-text').value, chat = ui.chat;
  if (!chat || !text.trim()) return;
  $('composer-error').textContent = '';
  try {
    await P.send(chat, text);
    setDraft(chat, '');
    if (ui.chat === chat) { $('composer-text').value = ''; fitComposer(); }
    await loadLatest();
    $('messages').scrollTop = $('messages').scrollHeight;
  } catch (err) {
    sendFailed(err);
  }
});
$('composer-file').addEventListener('change', async () => {
  const f = $('composer-file').files[0];
  $('composer-file').value = '';
  if (!f || !ui.chat) return;
  $('composer-error').textContent = '';
  try {
    await P.sendFile(ui.chat, f);
    await loadLatest();
  } catch (err) {
    sendFailed(err);
  }
});

function sendFailed(err) {
  if (err.code === 'safety_number_changed' && !ui.chat.startsWith('g:')) {
    ui.changed.add(ui.chat);
    renderSafety();
    return;
  }
  $('composer-error').textContent = words(err);
}

$('btn-contact').addEventListener('click', () => (ui.chat.startsWith('g:') ? openGroup(ui.chat) : openContact(ui.chat)));
