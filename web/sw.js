// Parley's service worker: it makes the app start with no network. The
// server serves this file at /sw.js (scope "/") with every shell URL below
// rewritten to its content-versioned form ("/web/app.js?v=<hash>", and
// "/index.html" to "/?v=<hash>"), so a new build changes these bytes and
// the browser installs the new worker.
//
// Updates are safe by construction: a new worker precaches its whole shell
// into its own cache, then waits (no skipWaiting, no clients.claim), so it
// takes over on the next start, never in the middle of a session where a
// page of one version would load a wasm of another. The old cache is
// deleted only when the new worker activates.
//
// Only the shell is cached. The relay (/v1/) always goes to the network:
// messages and keys live in IndexedDB, sealed, never in this cache.
'use strict';

const SHELL = [
  "/index.html",
  "/web/app.js",
  // Everything under web/app/: the modules app.js imports (a Go test
  // checks that none is missing here).
  "/web/app/chats.js",
  "/web/app/conversation.js",
  "/web/app/devices.js",
  "/web/app/dom.js",
  "/web/app/drafts.js",
  "/web/app/embed.js",
  "/web/app/events.js",
  "/web/app/groups.js",
  "/web/app/link.js",
  "/web/app/lock.js",
  "/web/app/media.js",
  "/web/app/nav.js",
  "/web/app/newchat.js",
  "/web/app/notify.js",
  "/web/app/onboard.js",
  "/web/app/safety.js",
  "/web/app/scan.js",
  "/web/app/scroll.js",
  "/web/app/settings.js",
  "/web/app/shell.js",
  "/web/app/state.js",
  "/web/app/types.js",
  "/web/app/words.js",
  "/web/app.css",
  "/web/boot.js",
  "/web/dist/wasm_exec.js",
  "/web/dist/parley.wasm",
  "/web/icon.svg",
  "/web/icons/icon-192.png",
  "/web/icons/icon-512.png",
  "/web/icons/maskable-512.png",
  "/manifest.webmanifest",
];
// The cache is named after the versioned URLs, so each build has its own.
const CACHE = 'parley-shell-' + hash(SHELL.join('\n'));
const PAGE = SHELL[0];

function hash(s) {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0).toString(16);
}

self.addEventListener('install', (event) => {
  event.waitUntil(caches.open(CACHE).then((c) => c.addAll(SHELL)));
});

self.addEventListener('activate', (event) => {
  event.waitUntil(caches.keys().then((keys) => Promise.all(
    keys.filter((k) => k.startsWith('parley-shell-') && k !== CACHE).map((k) => caches.delete(k)))));
});

self.addEventListener('fetch', (event) => {
  const req = event.request;
  if (req.method !== 'GET') return;
  const url = new URL(req.url);
  if (url.origin !== self.location.origin || url.pathname.startsWith('/v1/')) return;
  if (req.mode === 'navigate' && url.pathname === '/') {
    // The page this worker's version was built with, so the page and the
    // wasm always match; the embed widget (?embed=1) uses the same page.
    event.respondWith(caches.open(CACHE).then((c) => c.match(PAGE)).then((r) => r || fetch(req)));
    return;
  }
  if (url.pathname === '/manifest.webmanifest') {
    // Unversioned: the network's copy when there is one.
    event.respondWith(fetch(req).catch(() => caches.open(CACHE).then((c) => c.match(req))).then((r) => r || Response.error()));
    return;
  }
  // Versioned URLs match exactly; an unversioned one (the manifest names
  // its icons without ?v=) goes to the network, else to the cached copy.
  event.respondWith(caches.open(CACHE).then((c) => c.match(req).then((r) => r ||
    fetch(req).catch((err) => c.match(req, { ignoreSearch: true }).then((r2) => r2 || Promise.reject(err))))));
});
