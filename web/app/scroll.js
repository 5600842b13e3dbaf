// Where the open chat's scroller is: pinned to the newest message while
// the reader is at the bottom (also while images load and grow the list
// after the scroll), and a "↓ N new" button for what arrives while the
// reader is scrolled up.
import { $, show } from "/web/app/dom.js";

// PIN_SLACK_PX is how near the bottom (in CSS pixels) still counts as at
// the bottom: a reader a line away from the end is reading the newest.
const PIN_SLACK_PX = 80;

let pinned = true; // the reader was at the bottom when they last scrolled
let unseen = 0;    // messages that arrived while not pinned

const box = () => $('messages');
const atBottom = () => { const b = box(); return b.scrollHeight - b.scrollTop - b.clientHeight < PIN_SLACK_PX; };

export const isPinned = () => pinned;

// toBottom shows the newest message and keeps it shown as the list grows,
// and clears the new-messages button.
export function toBottom() {
  pinned = true;
  const b = box();
  b.scrollTop = b.scrollHeight;
  setUnseen(0);
}

// noteArrived counts a message that arrived in the open chat: shown at
// once when the reader is at the bottom (the caller scrolls), counted on
// the button otherwise.
export function noteArrived() {
  if (!pinned) setUnseen(unseen + 1);
}

function setUnseen(n) {
  unseen = n;
  const btn = $('btn-new-messages');
  btn.textContent = '↓ ' + n + ' new';
  show(btn, n > 0);
}

// A scroll up by the reader leaves the newest message: the view stops
// following new content. Only a move up counts: the browser also scrolls
// by itself (scroll anchoring moves the view down when an image above it
// grows), and that must not unpin a reader at the bottom. A scroll that
// reaches the bottom pins again and has seen what was new.
let lastTop = 0;
box().addEventListener('scroll', () => {
  const top = box().scrollTop;
  if (atBottom()) pinned = true;
  else if (top < lastTop - 1) pinned = false;
  lastTop = top;
  if (pinned && unseen) setUnseen(0);
}, { passive: true });

// Images (and their placeholders) change the list's height after it was
// drawn and scrolled: while pinned, follow the bottom, on every resize of
// the list and every image that finishes loading (load does not bubble:
// captured).
const follow = () => { if (pinned) box().scrollTop = box().scrollHeight; };
new ResizeObserver(follow).observe($('message-list'));
box().addEventListener('load', follow, true);

$('btn-new-messages').addEventListener('click', () => {
  toBottom();
  $('messages').focus({ preventScroll: true });
});
