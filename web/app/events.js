// The engine's events, and the other signals (visibility, network) that
// ask the views to catch up.
import { loadChats, loadGroups, renderChats } from "/web/app/chats.js";
import { loadLatest, markRead, renderMessages } from "/web/app/conversation.js";
import { loadDevices } from "/web/app/devices.js";
import { $, toast } from "/web/app/dom.js";
import { renderGroup } from "/web/app/groups.js";
import { notify } from "/web/app/notify.js";
import { chatName, on, P, render, ui } from "/web/app/state.js";
import { errorWords } from "/web/app/words.js";

// Engine events ask for the chat list (and the open chat) again; a burst
// of incoming messages sends several per message. coalesced(fn) runs fn at
// most once at a time and at most once every REFRESH_MS, and always once
// after the last request, so the view ends current without a storage read
// per message (each would delay the next message's write in the engine).
const REFRESH_MS = 150;

function coalesced(fn) {
  let busy = false;
  let again = false;
  const run = () => {
    if (busy) {
      again = true;
      return;
    }
    busy = true;
    Promise.resolve()
      .then(fn)
      .catch(() => {})
      .then(() => new Promise((r) => setTimeout(r, REFRESH_MS)))
      .finally(() => {
        busy = false;
        if (again) {
          again = false;
          run();
        }
      });
  };
  return run;
}

const refreshChats = coalesced(() => loadChats());
const refreshOpenChat = coalesced(() => loadLatest().then(markRead));

on('state', () => { render(); });
on('chats', () => { if (ui.view === 'view-main') refreshChats(); });
on('group', () => {
  loadGroups().then(() => {
    if (ui.view !== 'view-main') return;
    renderChats();
    if (ui.pane === 'group') renderGroup();
    if (ui.chat) $('chat-title').textContent = chatName(ui.chat);
  });
});
on('devices', () => { if (ui.view === 'view-main') loadDevices(); });
on('message', (e) => {
  const m = e.message;
  if (!m) return;
  if (ui.view === 'view-main') refreshChats();
  if (m.chatId === ui.chat) {
    const known = ui.msgs.has(m.id);
    ui.msgs.set(m.id, m);
    refreshOpenChat();
    // The list is redrawn as a whole, so it is not a live region; a new
    // incoming message is read out once from here.
    if (!known && !m.outgoing) $('announce').textContent = m.from + ': ' + (m.text || (m.attachment ? 'sent a file' : ''));
  }
  notify(m);
});
on('receipt', (e) => {
  const m = e.message;
  if (m && m.chatId === ui.chat) {
    const old = ui.msgs.get(m.id);
    ui.msgs.set(m.id, old ? { ...old, status: m.status } : m);
    renderMessages();
  }
});
on('transfer-progress', (e) => {
  ui.progress.set(e.messageId, { done: e.done || 0, total: e.total || 0 });
  if (ui.msgs.has(e.messageId)) renderMessages();
});
on('error', (e) => {
  // A changed safety number has its own banner; the rest get a toast.
  if (e.code === 'safety_number_changed' || !e.text) return;
  toast(errorWords[e.code] || errorWords.internal); // never e.text: see words()
});

document.addEventListener('visibilitychange', () => { if (!document.hidden) markRead(); });

// The relay connection changes state() (online); state events say so,
// and a slow poll catches a flapping network between them.
setInterval(() => {
  if (ui.view === 'view-main' && !document.hidden) {
    P.state().then((st) => {
      if (ui.st && st.online !== ui.st.online) render();
    }, () => {});
  }
}, 3000);
window.addEventListener('online', () => render());
window.addEventListener('offline', () => render());
