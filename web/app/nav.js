// Navigation: which top-level view shows, which pane of the main view, and
// which chat of the list is current.
import { $, show } from "/web/app/dom.js";
import { scanning, stopScan } from "/web/app/scan.js";
import { ui } from "/web/app/state.js";

export function setView(name) {
  ui.view = name;
  for (const v of ['problem', 'view-locked', 'view-revoked', 'view-onboard', 'view-main']) {
    show($(v), v === name);
  }
  document.body.dataset.view = name;
}

// openPane shows one pane; on narrow screens the pane replaces the list
// (body[data-pane] drives the CSS). focus moves to the pane's heading so
// keyboard and screen reader users land where the content is.
export function openPane(name, focus = true) {
  if (name !== 'link' && scanning()) stopScan();
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

export function markCurrent() {
  for (const b of document.querySelectorAll('#chat-list button')) {
    if (ui.pane === 'chat' && b.dataset.chat === ui.chat) b.setAttribute('aria-current', 'true');
    else b.removeAttribute('aria-current');
  }
}
