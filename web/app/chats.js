// The chat list in the sidebar. A chat is opened from it in conversation.js
// (a click on any of its buttons).
import { $, clear, formats, h, shortTime, show, toast } from "/web/app/dom.js";
import { postHost } from "/web/app/embed.js";
import { markCurrent } from "/web/app/nav.js";
import { chatName, P, ui } from "/web/app/state.js";
import { words } from "/web/app/words.js";

let shownUnread = -1; // the unread count last shown in the title and badge

export async function loadChats() {
  try {
    const chats = P.chats();
    formats(); // while the engine reads
    ui.chats = await chats;
  } catch (err) {
    if (err.code !== 'locked') toast(words(err));
    return;
  }
  renderChats();
}

export function renderChats() {
  const list = $('chat-list');
  const key = JSON.stringify([ui.chats, [...ui.groups.values()].map((g) => g.name)]);
  if (key === ui.chatsKey) { markCurrent(); return; }
  ui.chatsKey = key;
  const focused = document.activeElement && document.activeElement.dataset ? document.activeElement.dataset.chat : undefined;
  clear(list);
  let unread = 0;
  for (const c of ui.chats) {
    unread += c.unread || 0;
    const name = chatName(c.id);
    // The button's name is its visible text (name, time, last message,
    // unread count), not an aria-label that would hide part of it from
    // speech input and screen readers (axe label-content-name-mismatch).
    const btn = h('button', { type: 'button', class: 'chat-item', 'data-chat': c.id },
      h('span', { class: 'avatar', 'aria-hidden': 'true', text: name.replace(/^g:/, '').slice(0, 1).toUpperCase() }),
      h('span', { class: 'chat-main' },
        h('span', { class: 'chat-top' },
          h('span', { class: 'chat-name', text: name }),
          h('time', { class: 'chat-time', datetime: c.lastAt ? new Date(c.lastAt).toISOString() : false, text: c.lastAt ? shortTime(c.lastAt) : '' })),
        h('span', { class: 'chat-bottom' },
          h('span', { class: 'chat-last', text: c.lastText || (c.lastFile ? 'Attachment' : '') }),
          c.unread ? h('span', { class: 'badge' }, String(c.unread), h('span', { class: 'visually-hidden', text: ' unread' })) : null)));
    list.append(h('li', {}, btn));
  }
  show($('chat-empty'), ui.chats.length === 0);
  markCurrent();
  if (focused) {
    const again = list.querySelector('[data-chat="' + CSS.escape(focused) + '"]');
    if (again) again.focus();
  }
  // The list is redrawn after every batch of engine events, most of which
  // (receipts, sends, messages in the open chat) leave the count as it
  // was; each setAppBadge costs ~0.2 ms of main thread (a Chrome profile
  // of 150 received messages), time a received message's storage write
  // competes for. The host hears it every time: it may have connected
  // since.
  postHost({ type: 'unread', count: unread });
  if (unread !== shownUnread) {
    shownUnread = unread;
    document.title = unread ? '(' + unread + ') Parley' : 'Parley';
    if (navigator.setAppBadge) navigator.setAppBadge(unread).catch(() => {});
  }
}

// Arrow keys move between chats; Home and End jump to the ends.
$('chat-list').addEventListener('keydown', (e) => {
  const items = [...document.querySelectorAll('#chat-list button')];
  const i = items.indexOf(document.activeElement);
  if (i < 0) return;
  const to = { ArrowDown: i + 1, ArrowUp: i - 1, Home: 0, End: items.length - 1 }[e.key];
  if (to === undefined) return;
  e.preventDefault();
  items[Math.max(0, Math.min(items.length - 1, to))].focus();
});

export async function loadGroups() {
  try {
    for (const g of await P.groups()) ui.groups.set(g.id, g);
  } catch { /* groups are optional decoration */ }
}
