// Parley embed widget. A site adds one tag:
//
//   <script src="https://parley.example/web/embed.js" data-parley-to="support"
//           data-parley-theme="auto" data-parley-label="Chat with us" async></script>
//
// and gets a chat button that opens Parley in an iframe served from
// Parley's own origin. Everything secret (device keys, ratchets, messages)
// lives in that iframe's storage, which the host page's scripts cannot
// read (the same-origin policy), so a compromised or curious host page
// learns only what this small postMessage API hands it:
//
//   window.Parley.open(handle)     open a chat with handle
//   window.Parley.setTheme(t)      'light', 'dark' or 'auto'
//   window.Parley.on('unread', (count) => ...)
//   window.Parley.on('state', (status) => ...)   'new', 'ready', 'locked', 'revoked'
//
// Messages both ways are checked: the widget accepts commands only from
// the origin it was given (and that really is its parent), and this script
// accepts events only from the Parley origin and its own iframe.
//
// The Parley server must allow the host origin to frame it:
// `parley-server -frame-ancestors "https://shop.example"` (or
// PARLEY_FRAME_ANCESTORS); every other origin is refused by the browser.
//
// Browsers partition third-party storage by top-level site, so the widget
// on each site is its own Parley device: the first time, the visitor
// creates an account there or links it to their primary, like any browser.
(function () {
  'use strict';
  const script = document.currentScript;
  if (!script || window.Parley) return;
  const parleyOrigin = new URL(script.src).origin;
  const data = script.dataset;
  const listeners = { unread: [], state: [], ready: [] };
  let frame = null;
  let panel = null;
  let button = null;
  let queued = [];
  let ready = false;

  function post(msg) {
    msg.parley = 1;
    if (ready && frame && frame.contentWindow) frame.contentWindow.postMessage(msg, parleyOrigin);
    else queued.push(msg);
  }

  function build() {
    const src = new URL('/', parleyOrigin);
    src.searchParams.set('embed', '1');
    src.searchParams.set('host', location.origin);
    if (data.parleyTo) src.searchParams.set('to', data.parleyTo);
    if (data.parleyTheme) src.searchParams.set('theme', data.parleyTheme);
    frame = document.createElement('iframe');
    frame.src = src.href;
    frame.title = data.parleyTitle || 'Parley chat';
    frame.setAttribute('allow', 'publickey-credentials-get ' + parleyOrigin + '; publickey-credentials-create ' + parleyOrigin + '; clipboard-write ' + parleyOrigin);
    frame.referrerPolicy = 'origin';
    Object.assign(frame.style, { border: '0', width: '100%', height: '100%', display: 'block' });

    const mount = data.parleyMount ? document.querySelector(data.parleyMount) : null;
    if (mount) {
      mount.appendChild(frame);
      return;
    }
    // Floating launcher: a button in the corner that opens a panel.
    panel = document.createElement('div');
    panel.setAttribute('role', 'dialog');
    panel.setAttribute('aria-label', frame.title);
    Object.assign(panel.style, {
      position: 'fixed', right: '1rem', bottom: '5rem', width: 'min(24rem, calc(100vw - 2rem))',
      height: 'min(36rem, calc(100vh - 7rem))', boxShadow: '0 8px 32px rgba(0,0,0,.3)', borderRadius: '12px',
      overflow: 'hidden', zIndex: '2147483000', background: '#fff', display: 'none',
    });
    panel.appendChild(frame);
    button = document.createElement('button');
    button.type = 'button';
    button.textContent = data.parleyLabel || 'Chat';
    button.setAttribute('aria-expanded', 'false');
    Object.assign(button.style, {
      position: 'fixed', right: '1rem', bottom: '1rem', zIndex: '2147483000', padding: '0.75rem 1.1rem',
      borderRadius: '2rem', border: '0', background: '#1f5f8b', color: '#fff', font: '600 1rem system-ui, sans-serif',
      cursor: 'pointer', boxShadow: '0 4px 16px rgba(0,0,0,.25)',
    });
    button.addEventListener('click', () => toggle());
    document.body.appendChild(panel);
    document.body.appendChild(button);
  }

  function toggle(open) {
    if (!panel) return;
    const show = open === undefined ? panel.style.display === 'none' : open;
    panel.style.display = show ? 'block' : 'none';
    button.setAttribute('aria-expanded', String(show));
    if (show) frame.focus();
  }

  function setUnread(n) {
    if (button) button.textContent = (data.parleyLabel || 'Chat') + (n ? ' (' + n + ')' : '');
  }

  window.addEventListener('message', (e) => {
    if (e.origin !== parleyOrigin || !frame || e.source !== frame.contentWindow) return;
    const d = e.data;
    if (!d || d.parley !== 1) return;
    if (d.type === 'ready') {
      ready = true;
      const q = queued; queued = [];
      q.forEach(post);
      listeners.ready.forEach((f) => f());
    } else if (d.type === 'unread' && typeof d.count === 'number') {
      setUnread(d.count);
      listeners.unread.forEach((f) => f(d.count));
    } else if (d.type === 'state' && typeof d.status === 'string') {
      listeners.state.forEach((f) => f(d.status));
    }
  });

  window.Parley = Object.freeze({
    open(handle) { toggle(true); post({ type: 'open', to: String(handle) }); },
    setTheme(theme) { post({ type: 'theme', theme: String(theme) }); },
    on(event, fn) {
      if (!listeners[event] || typeof fn !== 'function') throw new Error('Parley.on: unknown event ' + event);
      listeners[event].push(fn);
      return () => { listeners[event] = listeners[event].filter((f) => f !== fn); };
    },
  });

  if (document.body) build();
  else document.addEventListener('DOMContentLoaded', build);
})();
