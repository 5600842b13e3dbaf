// The embed widget's channel to the page around it.
//
// In the widget (?embed=1&host=<origin>&to=<handle>) the page talks to the
// page around it only through postMessage, and only with the origin the
// embedding script named, which must also be the frame's real parent
// (location.ancestorOrigins) when the browser tells us. The server's
// frame-ancestors policy decides which origins may embed at all; this
// check keeps messages (unread counts, state) from reaching any other
// window. The host can ask to open a chat and set the theme, nothing else:
// no message text, no keys, no storage crosses the frame.
import { embed, params, ui } from "/web/app/state.js";

let host = '';   // the one origin we talk to
let target = ''; // the chat to open once ready

export const hostOrigin = () => host;

// takeTarget returns the chat the host asked for, once.
export function takeTarget() {
  const t = target;
  target = '';
  return t;
}

/** @param {(chatId: string) => void} openChat */
export function startEmbed(openChat) {
  if (!embed) return;
  document.body.classList.add('embed');
  const claimed = params.get('host') || '';
  const real = location.ancestorOrigins && location.ancestorOrigins.length ? location.ancestorOrigins[0] : null;
  if (window.parent !== window && claimed && (real === null || real === claimed)) host = claimed;
  target = (params.get('to') || '').toLowerCase();
  setTheme(params.get('theme'));
  window.addEventListener('message', (e) => {
    if (!host || e.origin !== host || e.source !== window.parent) return;
    const d = e.data;
    if (!d || d.parley !== 1) return;
    if (d.type === 'open' && typeof d.to === 'string') {
      if (ui.view === 'view-main') openChat(d.to.toLowerCase().slice(0, 64));
      else target = d.to.toLowerCase().slice(0, 64);
    } else if (d.type === 'theme') {
      setTheme(d.theme);
    }
  });
}

function setTheme(t) {
  if (t === 'light' || t === 'dark') document.documentElement.dataset.theme = t;
  else delete document.documentElement.dataset.theme;
}

export function postHost(msg) {
  if (host) window.parent.postMessage({ parley: 1, ...msg }, host);
}
