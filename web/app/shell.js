// The top level: which view shows for the client's state (a problem with
// its storage, locked, revoked, new, or the main view), redrawn on every
// state change.
import { loadChats, loadGroups } from "/web/app/chats.js";
import { openChat, retryFiles } from "/web/app/conversation.js";
import { loadDevices, renderExpiry } from "/web/app/devices.js";
import { $, clear, show } from "/web/app/dom.js";
import { dropDrafts, keepDrafts } from "/web/app/drafts.js";
import { postHost, takeTarget } from "/web/app/embed.js";
import { openPane, setView } from "/web/app/nav.js";
import { renderOnboard } from "/web/app/onboard.js";
import { scanning, stopScan } from "/web/app/scan.js";
import { embed, P, setRenderer, ui } from "/web/app/state.js";
import { advice, words } from "/web/app/words.js";

export function showProblem(err) {
  $('status').textContent = 'Parley cannot open this device\'s data.';
  // The code's words, never the error's text (words.js).
  $('problem-message').textContent = words(err);
  $('problem-advice').textContent = advice[err.code] || 'Nothing has been deleted. Reload the page to retry.';
  $('settings-fingerprint').textContent = '';
  setView('problem');
}

setRenderer(async function renderNow() {
  let st;
  try {
    st = await P.state();
  } catch (err) {
    showProblem(err);
    return;
  }
  const prev = ui.st;
  ui.st = st;
  // The chat list explains the storage risk until the user has read it
  // (app.css shows the note on the chat list only, never over a pane).
  show($('persist-note'), !st.persistent && !embed && localStorage.getItem('parley.persistDismissed') !== '1' && st.status === 'ready');
  show($('banner-offline'), st.status === 'ready' && st.online === false);
  switch (st.status) {
    case 'error':
      showProblem(st.error || { code: 'unknown', message: 'Unknown error' });
      return;
    case 'locked':
      wipe();
      $('status').textContent = 'Parley is locked on this browser.';
      show($('form-unlock-passphrase'), st.lock !== 'passkey');
      show($('btn-unlock-passkey'), st.lock === 'passkey');
      if (ui.view !== 'view-locked') {
        setView('view-locked');
        (st.lock === 'passkey' ? $('btn-unlock-passkey') : $('unlock-passphrase')).focus();
      }
      postHost({ type: 'state', status: 'locked' });
      return;
    case 'revoked':
      wipe();
      $('status').textContent = 'This browser is no longer part of your account.';
      setView('view-revoked');
      postHost({ type: 'state', status: 'revoked' });
      return;
    case 'new':
      await renderOnboard();
      postHost({ type: 'state', status: 'new' });
      return;
    case 'ready':
      $('status').textContent = st.online === false ? 'Offline — retrying' : '';
      // A browser just linked shows what it received until its user
      // opens the chats (onboard.js).
      if (ui.linking) return;
      if (prev && prev.online === false && st.online !== false) retryFiles();
      keepDrafts(); // the lock may have changed where drafts may be kept
      if (ui.view !== 'view-main' || !prev || prev.handle !== st.handle) await enterMain(st);
      renderExpiry();
      postHost({ type: 'state', status: 'ready', handle: st.handle });
      return;
    default:
      $('status').textContent = 'Starting…';
  }
});

// wipe drops every message, name and decrypted file from the page when
// the keys leave memory (lock, revocation): a locked browser shows and
// holds nothing of the conversations.
function wipe() {
  if (scanning()) stopScan();
  for (const url of ui.urls.values()) URL.revokeObjectURL(url);
  ui.urls.clear();
  ui.msgs = new Map();
  ui.chats = [];
  ui.devices = [];
  ui.groups.clear();
  ui.chat = null;
  ui.chatsKey = ui.devicesKey = null;
  ui.pendingLink = null;
  for (const id of ['message-list', 'chat-list', 'device-list', 'group-members']) clear($(id));
  for (const id of ['chat-title', 'group-title', 'contact-title', 'contact-digits', 'me', 'settings-fingerprint', 'announce', 'composer-error']) $(id).textContent = '';
  $('contact-qr').removeAttribute('src');
  $('composer-text').value = '';
  dropDrafts();
  $('approve-payload').value = '';
  if (ui.view === 'view-main') openPane('welcome', false);
}

/** @param {import("./types.js").State} st */
async function enterMain(st) {
  setView('view-main');
  $('me').textContent = st.handle;
  show($('btn-link-device'), !!st.primary);
  await Promise.all([loadChats(), loadDevices(), loadGroups()]);
  if (!ui.chat && ui.pane === 'welcome') openPane('welcome', false);
  const want = takeTarget();
  if (want) openChat(want);
}

$('btn-problem-reload').addEventListener('click', () => location.reload());
$('btn-persist-dismiss').addEventListener('click', () => {
  localStorage.setItem('parley.persistDismissed', '1');
  show($('persist-note'), false);
  const first = document.querySelector('#chat-list button') || $('btn-new-chat');
  first.focus(); // the button pressed is gone
});

// Installing the app is what keeps the data (an installed app's storage
// is persistent). Where the browser offers its install prompt (Chromium,
// once the page is installable), the Install buttons of the storage note
// and of Settings open it; elsewhere the note names the browser's menu.
let installPrompt = null;
function showInstall() {
  for (const b of document.querySelectorAll('button.install')) show(b, !!installPrompt && !embed);
  $('persist-how').textContent = installPrompt ? 'press Install Parley.' : 'use your browser\'s menu (Install app, or Add to Home screen).';
}
window.addEventListener('beforeinstallprompt', (e) => {
  e.preventDefault();
  installPrompt = e;
  showInstall();
});
window.addEventListener('appinstalled', () => { installPrompt = null; showInstall(); });
for (const b of document.querySelectorAll('button.install')) {
  b.addEventListener('click', async () => {
    if (!installPrompt) return;
    const p = installPrompt;
    installPrompt = null;
    await p.prompt();
    showInstall();
  });
}
