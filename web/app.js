// The Parley page. Everything it shows comes from window.parley, the
// client's only API (README, "The browser API"); this file holds no keys
// and no protocol, only views. Plain DOM, no framework: each screen is a
// section of index.html shown or hidden, text goes in with textContent
// (never innerHTML), so a message can never become markup.
//
// The same page runs three ways: a tab, an installed app (the service
// worker, web/sw.js, starts it offline), and the embed widget (?embed=1,
// inside an iframe that web/embed.js mounts on another site; see
// "Embedding" below).
const $ = (id) => document.getElementById(id);
const P = window.parley;

const params = new URLSearchParams(location.search);
const embed = params.get('embed') === '1';
let hostOrigin = '';  // embed: the one origin we talk to (see "Embedding")
let embedTarget = ''; // embed: the chat to open once ready

const advice = {
  storage_corrupt: 'Nothing has been deleted. If this persists, restore the browser profile from a backup or re-link this browser from your primary device; your other devices are unaffected.',
  storage_key_missing: 'The key that unlocks this browser\'s Parley data is gone (the browser may have cleared part of its storage). Nothing has been deleted. Re-link this browser from your primary device.',
  identity_missing: 'This browser\'s device identity is gone while its storage key remains (partial storage eviction). Nothing has been deleted. Re-link this browser from your primary device.',
  storage_unavailable: 'This browser is not letting Parley use its storage (private mode or storage disabled). Allow site data for this page and reload.',
  storage_evicted: 'The browser deleted Parley\'s data on this device (storage eviction). Nothing else has been deleted. Re-link this browser from your primary device, and install Parley or allow persistent storage so it does not happen again.',
  boot_failed: 'Reload the page. If it keeps failing, your browser may not support WebAssembly.',
};

// Plain words for the engine's error codes that people meet.
const errorWords = {
  bad_handle: 'A handle is 3 to 32 lowercase letters, digits, “.”, “_” or “-”.',
  handle_taken: 'That handle is taken. Try another.',
  unknown_account: 'Nobody has that handle.',
  offline: 'Not connected to the Parley server right now. Try again in a moment.',
  link_expired: 'The link code has expired. Start again on the new device.',
  link_used: 'That link code was already used. Start again on the new device.',
  link_cancelled: 'Linking was cancelled.',
  link_check_failed: 'The link failed its security check. Start again on both devices.',
  too_many_devices: 'Your account already has the maximum number of devices. Remove one first.',
  not_primary: 'Only your primary device can do this.',
  wrong_passphrase: 'That passphrase is not right.',
  wrong_passkey: 'That passkey does not unlock this browser.',
  passkey_unsupported: 'This browser cannot use a passkey for the lock (it lacks the WebAuthn PRF extension). Use a passphrase.',
  passkey_failed: 'The passkey did not answer. Try again.',
  too_large: 'That file is too large.',
  too_long: 'That message is too long.',
  undecryptable: 'A message could not be read on this device. Parley has asked the sender\'s device to send it again.',
  upload_queue_full: 'Too many files are already waiting for the connection. Send this one once you are back online.',
  bad_name: 'A group name is 1 to 64 bytes: up to 64 letters, fewer with accents or emoji.',
  not_group_admin: 'Only an admin of the group can change it.',
  left_group: 'You left this group, so you cannot send to it. You can still read what is here.',
  admin_cannot_leave: 'An admin cannot leave the group yet: handing the group to another admin is not built, and without an admin nobody could change it.',
};
const words = (err) => errorWords[err && err.code] || (err && err.message) || String(err);

// ---- small helpers ----

// on queues an engine event listener: the Go side adds parley.on once the
// wasm runs, after this module; main() subscribes them all after ready.
const pendingListeners = [];
const on = (event, fn) => pendingListeners.push([event, fn]);

const show = (el, on = true) => { el.hidden = !on; };
const clear = (el) => { while (el.firstChild) el.removeChild(el.firstChild); };
function h(tag, attrs = {}, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === false || v == null) continue;
    if (k === 'class') el.className = v;
    else if (k === 'text') el.textContent = v;
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const kid of kids) if (kid != null) el.append(kid);
  return el;
}
const svgURL = (svg) => 'data:image/svg+xml;charset=utf-8,' + encodeURIComponent(svg);
const dayKey = (ms) => new Date(ms).toDateString();
// The page's first Intl.DateTimeFormat loads the locale's data: 10-30 ms
// of main thread in a Chrome trace, which at start-up is the time the
// client needs to become ready. Nothing before ready formats a date, so
// the formatters are made on first use, and loadChats makes them while
// the engine reads the chat list (the main thread only waits then).
let fmts = null;
function formats() {
  fmts ??= {
    time: new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' }),
    date: new Intl.DateTimeFormat(undefined, { day: 'numeric', month: 'short', year: 'numeric' }),
    day: new Intl.DateTimeFormat(undefined, { weekday: 'long', day: 'numeric', month: 'long' }),
  };
  return fmts;
}
function dayLabel(ms) {
  const d = new Date(ms), today = new Date();
  const yesterday = new Date(); yesterday.setDate(today.getDate() - 1);
  if (d.toDateString() === today.toDateString()) return 'Today';
  if (d.toDateString() === yesterday.toDateString()) return 'Yesterday';
  return formats().day.format(d);
}
const shortTime = (ms) => (dayKey(ms) === dayKey(Date.now()) ? formats().time.format(ms) : formats().date.format(ms));
const fmtSize = (n) => (n < 1024 ? n + ' B' : n < 1 << 20 ? (n / 1024).toFixed(0) + ' KB' : (n / (1 << 20)).toFixed(1) + ' MB');

let toastTimer = 0;
function toast(text) {
  const t = $('toast');
  t.textContent = text;
  show(t);
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => show(t, false), 6000);
}

// confirmDialog asks a yes/no question in a modal <dialog> (focus stays in
// it, Escape cancels) and resolves true for yes.
function confirmDialog(title, text, ok) {
  const d = $('confirm');
  $('confirm-title').textContent = title;
  $('confirm-text').textContent = text;
  $('confirm-ok').textContent = ok;
  return new Promise((resolve) => {
    const done = (v) => () => { d.close(); resolve(v); };
    const okFn = done(true), noFn = done(false);
    $('confirm-ok').addEventListener('click', okFn, { once: true });
    $('confirm-cancel').addEventListener('click', noFn, { once: true });
    d.addEventListener('cancel', () => resolve(false), { once: true });
    d.showModal();
    $('confirm-cancel').focus();
  });
}

// ---- state ----

const ui = {
  st: null,             // last state()
  view: '',             // which top-level view shows
  pane: 'welcome',      // which pane of the main view
  chat: null,           // open chat id
  msgs: new Map(),      // open chat's loaded messages by id
  oldest: null,         // id of the oldest loaded message
  more: true,           // older messages may exist
  chats: [],
  devices: [],
  groups: new Map(),    // group chat id → group
  changed: new Set(),   // handles whose safety number changed, not yet acknowledged
  urls: new Map(),      // message id → object URL of a decrypted attachment
  progress: new Map(),  // message id → {done, total}
  pendingLink: null,    // primary: {linkId, checkCode, deviceName}
  linking: false,       // companion: a link is in progress
  fingerprint: '',
};

// ---- top level: which view ----

function setView(name) {
  ui.view = name;
  for (const v of ['problem', 'view-locked', 'view-revoked', 'view-onboard', 'view-main']) {
    show($(v), v === name);
  }
  document.body.dataset.view = name;
}

function showProblem(err) {
  $('status').textContent = 'Parley cannot open this device\'s data.';
  $('problem-message').textContent = err.message || String(err);
  $('problem-advice').textContent = advice[err.code] || 'Nothing has been deleted. Reload the page to retry.';
  $('fingerprint').textContent = '';
  setView('problem');
}

let rendering = Promise.resolve();
// render follows state(); calls are serialized so events arriving in a
// burst cannot interleave two renders.
function render() {
  rendering = rendering.then(renderNow, renderNow);
  return rendering;
}

async function renderNow() {
  let st;
  try {
    st = await P.state();
  } catch (err) {
    showProblem(err);
    return;
  }
  const prev = ui.st;
  ui.st = st;
  show($('banner-persist'), !st.persistent && !embed && localStorage.getItem('parley.persistDismissed') !== '1' && st.status === 'ready');
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
      await renderOnboard(st);
      postHost({ type: 'state', status: 'new' });
      return;
    case 'ready':
      $('status').textContent = st.online === false ? 'Offline — retrying' : '';
      if (ui.view !== 'view-main' || !prev || prev.handle !== st.handle) await enterMain(st);
      renderExpiry();
      postHost({ type: 'state', status: 'ready', handle: st.handle });
      return;
    default:
      $('status').textContent = 'Starting…';
  }
}

// wipe drops every message, name and decrypted file from the page when
// the keys leave memory (lock, revocation): a locked browser shows and
// holds nothing of the conversations.
function wipe() {
  if (scan) stopScan();
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
  $('approve-payload').value = '';
  if (ui.view === 'view-main') openPane('welcome', false);
}

async function renderOnboard(st) {
  $('status').textContent = '';
  if (ui.view !== 'view-onboard') {
    setView('view-onboard');
    if (!ui.linking) {
      show($('onboard-choices'));
      show($('link-wait'), false);
    }
    const guess = deviceGuess();
    if (!$('create-device').value) $('create-device').value = guess;
    if (!$('link-device').value) $('link-device').value = guess;
  }
  const fp = await P.deviceFingerprint().catch(() => null);
  if (fp === null) return;
  $('fingerprint').textContent = fp;
  $('persist').textContent = st.persistent
    ? 'Storage on this browser is marked persistent.'
    : 'This browser has not granted persistent storage; it may clear Parley\'s data under storage pressure.';
  show($('device'));
}

function deviceGuess() {
  const ua = navigator.userAgent;
  const os = /Android/.test(ua) ? 'Android' : /iPhone|iPad/.test(ua) ? 'iOS' : /Mac OS/.test(ua) ? 'Mac'
    : /Windows/.test(ua) ? 'Windows' : /Linux|CrOS/.test(ua) ? 'Linux' : '';
  const br = /Edg\//.test(ua) ? 'Edge' : /Firefox\//.test(ua) ? 'Firefox' : /Chrom/.test(ua) ? 'Chromium' : /Safari\//.test(ua) ? 'Safari' : 'Browser';
  return (embed ? 'Widget on ' + (hostOrigin || 'a site') : br + (os ? ' on ' + os : '')).slice(0, 64);
}

// ---- onboarding ----

$('form-create').addEventListener('submit', async (e) => {
  e.preventDefault();
  const btn = e.submitter || $('form-create').querySelector('button');
  $('create-error').textContent = '';
  btn.disabled = true;
  try {
    await P.createAccount($('create-handle').value.trim(), $('create-device').value.trim());
    await render();
  } catch (err) {
    $('create-error').textContent = words(err);
  } finally {
    btn.disabled = false;
  }
});

$('form-link').addEventListener('submit', async (e) => {
  e.preventDefault();
  $('link-start-error').textContent = '';
  const btn = $('form-link').querySelector('button');
  btn.disabled = true;
  try {
    const s = await P.startLink($('link-device').value.trim());
    ui.linking = true;
    $('link-qr').src = svgURL(s.qrSvg);
    $('link-payload').value = s.payload;
    $('link-expires').textContent = s.expires ? 'This code works until ' + formats().time.format(s.expires * 1000) + '.' : '';
    show($('link-check'), false);
    show($('link-sync'), false);
    $('link-error').textContent = '';
    show($('onboard-choices'), false);
    show($('link-wait'));
    $('link-wait-title').focus();
    waitLinked();
  } catch (err) {
    $('link-start-error').textContent = words(err);
  } finally {
    btn.disabled = false;
  }
});
$('link-wait-title').tabIndex = -1;

async function waitLinked() {
  try {
    await P.waitLinked();
    ui.linking = false;
    show($('link-wait'), false);
    show($('onboard-choices'));
    await render();
  } catch (err) {
    $('link-error').textContent = words(err);
  }
}

$('btn-copy-payload').addEventListener('click', async () => {
  const ta = $('link-payload');
  try {
    await navigator.clipboard.writeText(ta.value);
    toast('Link code copied.');
  } catch {
    ta.select(); // the user can copy the selection
    toast('Select the link code and copy it.');
  }
});

$('btn-link-restart').addEventListener('click', () => {
  ui.linking = false;
  show($('link-wait'), false);
  show($('onboard-choices'));
  $('link-device').focus();
});

on('link-check', (e) => {
  $('link-check-code').textContent = e.checkCode;
  show($('link-check'));
});

on('sync-progress', (e) => {
  if (!ui.linking) return;
  show($('link-sync'));
  const p = $('link-progress');
  if (e.total) { p.max = e.total; p.value = e.done || 0; }
  p.setAttribute('aria-valuetext', e.text === 'download' ? 'Downloading history' : 'Saving history');
});

// ---- locked ----

$('form-unlock-passphrase').addEventListener('submit', async (e) => {
  e.preventDefault();
  $('unlock-error').textContent = '';
  try {
    await P.unlock({ passphrase: $('unlock-passphrase').value });
    $('unlock-passphrase').value = '';
    await render();
  } catch (err) {
    $('unlock-error').textContent = words(err);
    $('unlock-passphrase').select();
  }
});
$('btn-unlock-passkey').addEventListener('click', async () => {
  $('unlock-error').textContent = '';
  try {
    await P.unlock({ passkey: true });
    await render();
  } catch (err) {
    $('unlock-error').textContent = words(err);
  }
});

$('btn-problem-reload').addEventListener('click', () => location.reload());
$('btn-persist-dismiss').addEventListener('click', () => {
  localStorage.setItem('parley.persistDismissed', '1');
  show($('banner-persist'), false);
});

// ---- main view ----

async function enterMain(st) {
  setView('view-main');
  $('me').textContent = st.handle;
  show($('btn-link-device'), !!st.primary);
  await Promise.all([loadChats(), loadDevices(), loadGroups()]);
  if (!ui.chat && ui.pane === 'welcome') openPane('welcome', false);
  const want = embedTarget;
  if (want) { embedTarget = ''; openChat(want); }
}

// openPane shows one pane; on narrow screens the pane replaces the list
// (body[data-pane] drives the CSS). focus moves to the pane's heading so
// keyboard and screen reader users land where the content is.
function openPane(name, focus = true) {
  if (name !== 'link' && scan) stopScan();
  ui.pane = name;
  for (const p of document.querySelectorAll('#pane > .pane')) show(p, p.id === 'pane-' + name);
  document.body.dataset.pane = name === 'welcome' ? '' : 'open';
  if (name !== 'chat') ui.chat = null;
  markCurrent();
  if (focus) {
    const head = document.querySelector('#pane-' + name + ' h2');
    if (head) { head.tabIndex = -1; head.focus(); }
  }
}

function back() {
  if (ui.pane === 'group' && ui.groupOpen) {
    openChat(ui.groupOpen);
    return;
  }
  if (ui.pane === 'contact' && ui.contactFrom) {
    const c = ui.contactFrom; ui.contactFrom = null;
    openChat(c);
    return;
  }
  openPane('welcome', false);
  const cur = document.querySelector('#chat-list button');
  if (cur) cur.focus();
}
for (const b of document.querySelectorAll('.back')) b.addEventListener('click', back);
document.addEventListener('keydown', (e) => {
  if (e.key === 'Escape' && ui.view === 'view-main' && ui.pane !== 'welcome' && !$('confirm').open) back();
});

$('btn-new-chat').addEventListener('click', () => { openPane('newchat'); $('newchat-handle').focus(); });
$('btn-new-group').addEventListener('click', () => { openPane('newgroup'); $('newgroup-name').focus(); });
$('btn-devices').addEventListener('click', () => { openPane('devices'); loadDevices(); });
$('btn-settings').addEventListener('click', () => { openPane('settings'); renderSettings(); });
$('btn-link-device').addEventListener('click', () => {
  openPane('link');
  resetApprove();
  $('approve-payload').focus();
});

// ---- chat list ----

let shownUnread = -1; // the unread count last shown in the title and badge

async function loadChats() {
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

function chatName(id) {
  if (id.startsWith('g:')) {
    const c = ui.chats.find((x) => x.id === id);
    const g = ui.groups.get(id);
    return (g && g.name) || (c && c.name) || 'Group';
  }
  return id;
}

function renderChats() {
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
    const label = name + (c.unread ? ', ' + c.unread + ' unread' : '');
    const btn = h('button', { type: 'button', class: 'chat-item', 'data-chat': c.id, 'aria-label': label, onclick: () => openChat(c.id) },
      h('span', { class: 'avatar', 'aria-hidden': 'true', text: name.replace(/^g:/, '').slice(0, 1).toUpperCase() }),
      h('span', { class: 'chat-main' },
        h('span', { class: 'chat-top' },
          h('span', { class: 'chat-name', text: name }),
          h('time', { class: 'chat-time', datetime: c.lastAt ? new Date(c.lastAt).toISOString() : false, text: c.lastAt ? shortTime(c.lastAt) : '' })),
        h('span', { class: 'chat-bottom' },
          h('span', { class: 'chat-last', text: c.lastText || (c.lastFile ? 'Attachment' : '') }),
          c.unread ? h('span', { class: 'badge', 'aria-hidden': 'true', text: String(c.unread) }) : null)));
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

function markCurrent() {
  for (const b of document.querySelectorAll('#chat-list button')) {
    if (ui.pane === 'chat' && b.dataset.chat === ui.chat) b.setAttribute('aria-current', 'true');
    else b.removeAttribute('aria-current');
  }
}

async function loadGroups() {
  try {
    for (const g of await P.groups()) ui.groups.set(g.id, g);
  } catch { /* groups are optional decoration */ }
}

// ---- conversation ----

const PAGE = 50;

async function openChat(id) {
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
  renderSafety();
  markCurrent();
  await loadLatest();
  $('composer-text').focus();
  markRead();
}

function markRead() {
  if (!ui.chat || document.hidden) return;
  const c = ui.chats.find((x) => x.id === ui.chat);
  if (c && c.unread) P.markRead(ui.chat).then(loadChats, () => {});
}

async function loadLatest() {
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

function renderMessages() {
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
    (ui.failed = ui.failed || new Set()).add(m.id); // no automatic retry
    if (btn) { btn.disabled = false; toast(words(err)); }
  } finally {
    ui.fetching.delete(m.id);
  }
}

// The composer: Enter sends, Shift+Enter starts a new line.
$('composer-text').addEventListener('keydown', (e) => {
  if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
    e.preventDefault();
    $('composer').requestSubmit();
  }
});
$('composer').addEventListener('submit', async (e) => {
  e.preventDefault();
  const text = $('composer-text').value;
  if (!ui.chat || !text.trim()) return;
  $('composer-error').textContent = '';
  try {
    await P.send(ui.chat, text);
    $('composer-text').value = '';
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

// ---- safety numbers ----

// renderSafety shows the banner for an open chat whose contact's safety
// number changed; sending stays off until the user acknowledges it.
function renderSafety() {
  const c = ui.chat;
  const changed = !!c && ui.changed.has(c);
  show($('safety-banner'), changed);
  $('composer-send').disabled = changed;
  $('composer-text').disabled = changed;
  $('composer-file').disabled = changed;
  if (changed) {
    $('safety-text').textContent = 'The safety number with ' + c + ' has changed. They may have reinstalled Parley, or someone may be trying to intercept your messages. Sending is paused until you acknowledge it; compare the new number with ' + c + ' to be sure.';
  }
}

async function acknowledge(handle) {
  try {
    await P.acknowledgeSafetyNumber(handle);
    ui.changed.delete(handle);
    renderSafety();
    show($('contact-changed'), false);
    toast('Sending to ' + handle + ' is on again.');
    return true;
  } catch (err) {
    toast(words(err));
    return false;
  }
}

$('btn-safety-ack').addEventListener('click', async () => {
  if (ui.chat && await acknowledge(ui.chat)) $('composer-text').focus();
});
$('btn-safety-review').addEventListener('click', () => openContact(ui.chat));
$('btn-contact').addEventListener('click', () => (ui.chat.startsWith('g:') ? openGroup(ui.chat) : openContact(ui.chat)));
$('btn-contact-ack').addEventListener('click', async () => {
  const who = $('contact-title').dataset.handle;
  if (await acknowledge(who)) openContact(who);
});

async function openContact(handle) {
  ui.contactFrom = handle;
  openPane('contact');
  $('contact-title').textContent = handle;
  $('contact-title').dataset.handle = handle;
  $('contact-digits').textContent = '…';
  $('contact-qr').removeAttribute('src');
  $('contact-error').textContent = '';
  show($('contact-changed'), ui.changed.has(handle));
  try {
    const sn = await P.safetyNumber(handle);
    $('contact-digits').textContent = sn.digits;
    $('contact-qr').src = svgURL(sn.qrSvg);
  } catch (err) {
    $('contact-digits').textContent = '';
    if (err.code === 'safety_number_changed') {
      ui.changed.add(handle);
      show($('contact-changed'));
    } else {
      $('contact-error').textContent = words(err);
    }
  }
}

on('safety-number-changed', (e) => {
  ui.changed.add(e.chatId);
  if (ui.chat === e.chatId) renderSafety();
  else toast('The safety number with ' + e.chatId + ' changed.');
});

// ---- new chat, new group ----

$('form-newchat').addEventListener('submit', async (e) => {
  e.preventDefault();
  const handle = $('newchat-handle').value.trim().toLowerCase();
  $('newchat-error').textContent = '';
  if (handle === (ui.st && ui.st.handle)) {
    $('newchat-error').textContent = 'That is you. Your own devices see every chat already.';
    return;
  }
  try {
    await P.safetyNumber(handle); // the account exists and its keys are known
  } catch (err) {
    if (err.code !== 'safety_number_changed') {
      $('newchat-error').textContent = words(err);
      return;
    }
    ui.changed.add(handle);
  }
  $('newchat-handle').value = '';
  openChat(handle);
});

$('form-newgroup').addEventListener('submit', async (e) => {
  e.preventDefault();
  $('newgroup-error').textContent = '';
  const members = $('newgroup-members').value.split(/[\s,]+/).map((s) => s.trim().toLowerCase()).filter(Boolean);
  try {
    const g = await P.createGroup($('newgroup-name').value.trim(), members);
    $('newgroup-name').value = '';
    $('newgroup-members').value = '';
    await loadGroups();
    await loadChats();
    openChat(g.id);
  } catch (err) {
    $('newgroup-error').textContent = words(err);
  }
});

// ---- group info ----

async function openGroup(id) {
  ui.groupOpen = id;
  openPane('group');
  await loadGroups();
  renderGroup();
}

function renderGroup() {
  const g = ui.groups.get(ui.groupOpen);
  $('group-error').textContent = '';
  const list = $('group-members');
  clear(list);
  if (!g) { $('group-title').textContent = 'Group'; return; }
  $('group-title').textContent = g.name || 'Group';
  const me = ui.st && ui.st.handle;
  for (const m of g.members) {
    const li = h('li', { class: 'member' }, h('span', { text: m + (m === me ? ' (you)' : '') }),
      (g.admins || []).includes(m) ? h('span', { class: 'tag', text: 'Admin' }) : null);
    if (g.admin && m !== me) {
      li.append(h('button', { type: 'button', class: 'danger', 'aria-label': 'Remove ' + m, text: 'Remove', onclick: () => removeMember(g, m) }));
    }
    list.append(li);
  }
  const canChange = !!g.admin && g.member;
  show($('form-group-rename'), canChange);
  // A change arriving while the admin types must not overwrite the field.
  if (canChange && document.activeElement !== $('group-rename-name')) $('group-rename-name').value = g.name || '';
  show($('form-group-add'), canChange);
  show($('btn-group-leave'), g.member && !g.left && !(g.admins || []).includes(me));
  $('group-note').textContent = g.left ? (g.member ? 'You left this group and can no longer send to it. An admin’s device will remove you from the members; you keep the messages already here.'
    : 'You left this group. You keep the messages already here.')
    : !g.member ? 'You are no longer a member of this group.'
      : g.admin ? 'A removed member cannot read anything sent after.' : 'Only admins can change the group.';
}

async function removeMember(g, handle) {
  if (!await confirmDialog('Remove ' + handle + '?', handle + ' will not see messages sent to “' + (g.name || 'the group') + '” from now on.', 'Remove')) return;
  try {
    await P.removeMember(g.id, handle);
    await loadGroups();
    renderGroup();
  } catch (err) {
    $('group-error').textContent = words(err);
  }
}

$('form-group-rename').addEventListener('submit', async (e) => {
  e.preventDefault();
  $('group-error').textContent = '';
  try {
    const name = $('group-rename-name').value.trim();
    await P.renameGroup(ui.groupOpen, name);
    $('group-rename-name').value = name;
    await loadGroups();
    renderGroup();
    renderChats();
    $('announce').textContent = 'Group renamed to ' + name;
  } catch (err) {
    $('group-error').textContent = words(err);
  }
});

$('btn-group-leave').addEventListener('click', async () => {
  const g = ui.groups.get(ui.groupOpen);
  if (!g) return;
  const name = g.name || 'the group';
  if (!await confirmDialog('Leave “' + name + '”?', 'You will no longer be able to send to “' + name + '”, and once an admin’s device has removed you, you will not see new messages. The messages already here stay.', 'Leave')) return;
  $('group-error').textContent = '';
  try {
    await P.leaveGroup(g.id);
    await loadGroups();
    renderGroup();
    $('group-title').focus(); // the button is gone
  } catch (err) {
    $('group-error').textContent = words(err);
  }
});

$('form-group-add').addEventListener('submit', async (e) => {
  e.preventDefault();
  $('group-error').textContent = '';
  try {
    await P.addMember(ui.groupOpen, $('group-add-handle').value.trim().toLowerCase());
    $('group-add-handle').value = '';
    await loadGroups();
    renderGroup();
  } catch (err) {
    $('group-error').textContent = words(err);
  }
});

// ---- devices ----

const DAY = 86400e3;
const WARN_BEFORE = 7 * DAY;

async function loadDevices() {
  try {
    ui.devices = await P.devices();
  } catch (err) {
    if (err.code !== 'locked') $('devices-error').textContent = words(err);
    return;
  }
  renderDevices();
  renderExpiry();
}

function renderDevices() {
  const list = $('device-list');
  const primary = ui.st && ui.st.primary;
  // Re-rendering an unchanged list would move focus off its buttons.
  const key = JSON.stringify([primary, ui.devices]);
  if (key === ui.devicesKey) return;
  ui.devicesKey = key;
  clear(list);
  for (const d of ui.devices) {
    const facts = [
      d.primary ? 'Primary device' : 'Companion (browser)',
      'Added ' + formats().date.format(d.added * 1000),
    ];
    if (!d.primary) facts.push('Last confirmed by the primary ' + formats().date.format(d.attested * 1000));
    const item = h('li', { class: 'device' },
      h('div', {},
        h('strong', { text: d.name || 'Unnamed device' }),
        d.thisDevice ? h('span', { class: 'tag', text: 'This device' }) : null),
      h('p', { class: 'hint', text: facts.join(' · ') }));
    if (!d.primary && d.expires) {
      const left = d.expires * 1000 - Date.now();
      const soon = left < WARN_BEFORE;
      item.append(h('p', { class: soon ? 'warn-text' : 'hint', text: (left < 0 ? 'Retired since ' : 'Works until ') + formats().date.format(d.expires * 1000) + (soon && left >= 0 ? ' — soon. The primary must re-confirm it.' : '') }));
    }
    if (primary && !d.primary) {
      item.append(h('button', { type: 'button', class: 'danger', 'aria-label': 'Revoke ' + (d.name || 'device'), text: 'Revoke', onclick: () => revoke(d) }));
    }
    list.append(item);
  }
  show($('btn-reattest'), !!primary && ui.devices.some((d) => !d.primary));
}

async function revoke(d) {
  const ok = await confirmDialog('Revoke “' + (d.name || 'this device') + '”?',
    'It stops receiving messages at once and can no longer send as you. This cannot be undone; to use it again you link it again.', 'Revoke');
  if (!ok) return;
  $('devices-error').textContent = '';
  try {
    await P.revokeDevice(d.id);
    toast('“' + (d.name || 'Device') + '” was revoked.');
    await loadDevices();
  } catch (err) {
    $('devices-error').textContent = words(err);
  }
}

$('btn-reattest').addEventListener('click', async () => {
  try {
    await P.reattest();
    toast('Your companions are confirmed again.');
    await loadDevices();
  } catch (err) {
    $('devices-error').textContent = words(err);
  }
});

// renderExpiry warns a companion before its attestation runs out.
function renderExpiry() {
  const me = ui.devices.find((d) => d.thisDevice);
  const b = $('banner-expiry');
  if (!me || me.primary || !me.expires || ui.view !== 'view-main') { show(b, false); return; }
  const left = me.expires * 1000 - Date.now();
  if (left > WARN_BEFORE) { show(b, false); return; }
  b.textContent = left < 0 || (ui.st && ui.st.expired)
    ? 'This browser\'s confirmation ran out. Open Parley on your primary device so it can confirm this browser again.'
    : 'This browser stops working on ' + formats().date.format(me.expires * 1000) + ' unless your primary device confirms it again: open Parley on the primary before then.';
  show(b);
}

// ---- link a device (primary) ----

function resetApprove() {
  ui.pendingLink = null;
  $('approve-payload').value = '';
  show($('form-approve'));
  show($('btn-scan'));
  show($('approve-check'), false);
  $('approve-status').textContent = '';
  $('approve-error').textContent = '';
}

$('form-approve').addEventListener('submit', async (e) => {
  e.preventDefault();
  $('approve-error').textContent = '';
  $('approve-status').textContent = 'Contacting the new device…';
  try {
    const p = await P.approveLink($('approve-payload').value.trim());
    ui.pendingLink = p;
    $('approve-status').textContent = '';
    $('approve-name').textContent = p.deviceName || 'Unnamed device';
    $('approve-code').textContent = p.checkCode;
    show($('form-approve'), false);
    show($('btn-scan'), false);
    show($('approve-check'));
    $('btn-approve-confirm').focus();
  } catch (err) {
    $('approve-status').textContent = '';
    $('approve-error').textContent = words(err);
  }
});

// Scanning: camera frames go through the vendored jsQR (Chromium on Linux
// has no BarcodeDetector) until one holds a link code, which then takes
// the same path as a pasted one.
let scan = null;

function loadJsQR() {
  if (window.jsQR) return Promise.resolve(window.jsQR);
  const src = document.querySelector('meta[name="parley-jsqr"]').content;
  return new Promise((resolve, reject) => {
    const s = document.createElement('script');
    s.src = src;
    s.onload = () => resolve(window.jsQR);
    s.onerror = () => reject(new Error('The QR decoder did not load. Paste the link code instead.'));
    document.head.append(s);
  });
}

$('btn-scan').addEventListener('click', async () => {
  $('approve-error').textContent = '';
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    $('approve-error').textContent = 'This browser cannot use a camera here. Paste the link code instead.';
    return;
  }
  stopScan();
  try {
    const [decode, stream] = await Promise.all([
      loadJsQR(),
      navigator.mediaDevices.getUserMedia({ video: { facingMode: 'environment' }, audio: false }),
    ]);
    const video = $('scan-video');
    scan = { stream, timer: 0 };
    video.srcObject = stream;
    show($('scan'));
    show($('btn-scan'), false);
    await video.play();
    const canvas = document.createElement('canvas');
    const g = canvas.getContext('2d', { willReadFrequently: true });
    const tick = () => {
      if (!scan || scan.stream !== stream) return;
      if (video.readyState >= 2 && video.videoWidth) {
        const k = Math.min(1, 640 / Math.max(video.videoWidth, video.videoHeight));
        canvas.width = Math.round(video.videoWidth * k);
        canvas.height = Math.round(video.videoHeight * k);
        g.drawImage(video, 0, 0, canvas.width, canvas.height);
        const img = g.getImageData(0, 0, canvas.width, canvas.height);
        const code = decode(img.data, img.width, img.height, { inversionAttempts: 'dontInvert' });
        if (code && code.data.startsWith('parley-link:')) {
          stopScan();
          $('approve-payload').value = code.data;
          $('form-approve').requestSubmit();
          return;
        }
      }
      scan.timer = setTimeout(tick, 120);
    };
    tick();
  } catch (err) {
    stopScan();
    $('approve-error').textContent = err.name === 'NotAllowedError' ? 'The camera was not allowed. Paste the link code instead.'
      : err.name === 'NotFoundError' ? 'No camera was found. Paste the link code instead.' : words(err);
  }
});
$('btn-scan-stop').addEventListener('click', () => { stopScan(); $('btn-scan').focus(); });

function stopScan() {
  if (scan) {
    clearTimeout(scan.timer);
    scan.stream.getTracks().forEach((tr) => tr.stop());
    scan = null;
  }
  $('scan-video').srcObject = null;
  show($('scan'), false);
  show($('btn-scan'));
}

$('btn-approve-confirm').addEventListener('click', async () => {
  const p = ui.pendingLink;
  if (!p) return;
  $('btn-approve-confirm').disabled = true;
  $('approve-status').textContent = 'Linking and sending your recent history…';
  try {
    await P.confirmLink(p.linkId);
    show($('approve-check'), false);
    $('approve-status').textContent = '“' + (p.deviceName || 'The device') + '” is linked.';
    ui.pendingLink = null;
    await loadDevices();
  } catch (err) {
    $('approve-status').textContent = '';
    $('approve-error').textContent = words(err);
  } finally {
    $('btn-approve-confirm').disabled = false;
  }
});
$('btn-approve-cancel').addEventListener('click', async () => {
  const p = ui.pendingLink;
  if (p) await P.cancelLink(p.linkId).catch(() => {});
  resetApprove();
  $('approve-status').textContent = 'Linking cancelled.';
  $('approve-payload').focus();
});

// ---- settings ----

async function renderSettings() {
  const st = ui.st || await P.state();
  const lock = st.lock || 'none';
  $('lock-' + lock).checked = true;
  show($('lock-passphrase-fields'), false);
  $('idle-lock').value = String(st.idleLockMs || 0);
  $('idle-lock').disabled = lock === 'none';
  show($('idle-hint'), lock === 'none');
  show($('btn-lock-now'), lock !== 'none');
  $('lock-status').textContent = lock === 'none' ? 'This browser is not locked.' : 'Locked with a ' + lock + '.';
  renderNotify();
  $('settings-fingerprint').textContent = ui.fingerprint || await P.deviceFingerprint().catch(() => '');
  $('settings-storage').textContent = st.persistent ? 'Storage on this browser is persistent.' : 'Storage on this browser is not persistent: the browser may clear it under pressure.';
  $('settings-version').textContent = 'Parley ' + P.version;
}

for (const r of document.querySelectorAll('input[name="lock"]')) {
  r.addEventListener('change', () => show($('lock-passphrase-fields'), $('lock-passphrase').checked));
}

$('form-lock').addEventListener('submit', async (e) => {
  e.preventDefault();
  const kind = document.querySelector('input[name="lock"]:checked')?.value || 'none';
  const status = $('lock-status');
  try {
    if (kind === 'passphrase') {
      const p1 = $('lock-pass1').value, p2 = $('lock-pass2').value;
      if (p1.length < 8) { status.textContent = 'Use at least 8 characters.'; $('lock-pass1').focus(); return; }
      if (p1 !== p2) { status.textContent = 'The two passphrases differ.'; $('lock-pass2').focus(); return; }
      status.textContent = 'Sealing…';
      await P.setLock({ passphrase: p1 });
      $('lock-pass1').value = $('lock-pass2').value = '';
    } else if (kind === 'passkey') {
      status.textContent = 'Follow your browser\'s passkey prompt…';
      await P.setLock({ passkey: true });
    } else {
      await P.setLock(null);
    }
    ui.st = await P.state();
    await renderSettings();
    status.textContent = kind === 'none' ? 'The lock is off.' : 'Saved: this browser is locked with a ' + kind + '.';
  } catch (err) {
    status.textContent = words(err);
  }
});

$('idle-lock').addEventListener('change', async () => {
  try {
    await P.setIdleLock(Number($('idle-lock').value));
    toast('Saved.');
  } catch (err) {
    toast(words(err));
  }
});
$('btn-lock-now').addEventListener('click', () => P.lock().catch((err) => toast(words(err))));

// ---- notifications ----

const notifyOn = () => typeof Notification !== 'undefined' && Notification.permission === 'granted' && localStorage.getItem('parley.notify') !== '0';

function renderNotify() {
  const s = $('notify-status'), b = $('btn-notify');
  if (typeof Notification === 'undefined') {
    s.textContent = 'This browser cannot show notifications.';
    show(b, false);
    return;
  }
  show(b);
  if (Notification.permission === 'denied') {
    s.textContent = 'Notifications are blocked for this site in the browser\'s settings.';
    show(b, false);
  } else if (notifyOn()) {
    s.textContent = 'On: you are told about new messages while Parley is in the background (sender only, never the text).';
    b.textContent = 'Turn off notifications';
  } else {
    s.textContent = 'Off.';
    b.textContent = 'Turn on notifications';
  }
}

$('btn-notify').addEventListener('click', async () => {
  if (notifyOn()) {
    localStorage.setItem('parley.notify', '0');
  } else {
    localStorage.setItem('parley.notify', '1');
    if (Notification.permission === 'default') await Notification.requestPermission();
  }
  renderNotify();
});

function notify(m) {
  if (!document.hidden || !notifyOn() || m.outgoing) return;
  // The sender's handle only: a notification is drawn by the OS, outside
  // the encrypted store, and may show on a lock screen.
  const n = new Notification('Parley', { body: 'New message from ' + m.from, tag: m.chatId, icon: '/web/icons/icon-192.png' });
  n.onclick = () => { window.focus(); openChat(m.chatId); n.close(); };
}

// ---- events from the engine ----

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
  toast(errorWords[e.code] || e.text);
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

// ---- embedding ----
//
// In the widget (?embed=1&host=<origin>&to=<handle>) the page talks to the
// page around it only through postMessage, and only with the origin the
// embedding script named, which must also be the frame's real parent
// (location.ancestorOrigins) when the browser tells us. The server's
// frame-ancestors policy decides which origins may embed at all; this
// check keeps messages (unread counts, state) from reaching any other
// window. The host can ask to open a chat and set the theme, nothing else:
// no message text, no keys, no storage crosses the frame.
if (embed) {
  document.body.classList.add('embed');
  const claimed = params.get('host') || '';
  const real = location.ancestorOrigins && location.ancestorOrigins.length ? location.ancestorOrigins[0] : null;
  if (window.parent !== window && claimed && (real === null || real === claimed)) hostOrigin = claimed;
  embedTarget = (params.get('to') || '').toLowerCase();
  setTheme(params.get('theme'));
  window.addEventListener('message', (e) => {
    if (!hostOrigin || e.origin !== hostOrigin || e.source !== window.parent) return;
    const d = e.data;
    if (!d || d.parley !== 1) return;
    if (d.type === 'open' && typeof d.to === 'string') {
      if (ui.view === 'view-main') openChat(d.to.toLowerCase().slice(0, 64));
      else embedTarget = d.to.toLowerCase().slice(0, 64);
    } else if (d.type === 'theme') {
      setTheme(d.theme);
    }
  });
}

function setTheme(t) {
  if (t === 'light' || t === 'dark') document.documentElement.dataset.theme = t;
  else delete document.documentElement.dataset.theme;
}

function postHost(msg) {
  if (hostOrigin) window.parent.postMessage({ parley: 1, ...msg }, hostOrigin);
}

// ---- start ----

async function main() {
  try {
    await P.ready;
  } catch (err) {
    showProblem(err);
    return;
  }
  for (const [event, fn] of pendingListeners) P.on(event, fn);
  await render();
  postHost({ type: 'ready' });
}

// The service worker makes the app start offline. A new version installs
// in the background and waits: it takes over on the next start, never in
// the middle of a session (sw.js never calls skipWaiting). Registered once
// the client is ready, so its update check is not on the way there.
if ('serviceWorker' in navigator && !embed) {
  P.ready.catch(() => {}).then(() => navigator.serviceWorker.register('/sw.js', { scope: '/' })).catch((err) => {
    console.warn('parley: service worker not registered:', err && err.message);
  });
}

main();
