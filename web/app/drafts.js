// Drafts: what was typed in a chat's composer and not sent, one per chat,
// so a line meant for one chat never follows the user into another.
//
// Where they are kept depends on the lock (docs/THREAT_MODEL.md, "A thief
// with a copy of the browser profile"). With no lock, a copy of the
// profile already opens everything this browser holds, so drafts are kept
// in localStorage and survive a reload or a restart. With a lock, a draft
// would be the one plaintext a copied profile still shows, so drafts stay
// in this tab's memory only, and locking drops them with everything else
// (shell.js wipe calls dropDrafts).
import { ui } from "/web/app/state.js";

// MAX_DRAFTS bounds what localStorage holds: the drafts of the chats
// typed in most recently (the composer bounds each to 16,000 characters).
const MAX_DRAFTS = 50;
const KEY = 'parley.drafts';

/** @type {Map<string, string> | null} chat id → draft, most recent last */
let drafts = null;

const persist = () => !!ui.st && ui.st.lock === 'none';

function load() {
  if (drafts) return drafts;
  drafts = new Map();
  if (!persist()) return drafts;
  try {
    const saved = JSON.parse(localStorage.getItem(KEY) || 'null');
    if (saved && saved.handle === ui.st.handle && Array.isArray(saved.drafts)) {
      for (const [chat, text] of saved.drafts.slice(-MAX_DRAFTS)) {
        if (typeof chat === 'string' && typeof text === 'string') drafts.set(chat, text);
      }
    }
  } catch { /* an unreadable entry is no draft */ }
  return drafts;
}

function save() {
  if (!persist()) {
    localStorage.removeItem(KEY);
    return;
  }
  try {
    localStorage.setItem(KEY, JSON.stringify({ handle: ui.st.handle, drafts: [...drafts] }));
  } catch { /* storage full: the draft stays in memory */ }
}

/** draftFor is the draft of chat, '' if none. */
export const draftFor = (chat) => load().get(chat) || '';

/** setDraft keeps text as chat's draft ('' removes it). */
export function setDraft(chat, text) {
  const d = load();
  d.delete(chat);
  if (text) d.set(chat, text);
  while (d.size > MAX_DRAFTS) d.delete(d.keys().next().value);
  save();
}

/**
 * keepDrafts stores the drafts as the lock now says: after a lock is set,
 * the copy in localStorage goes and they stay in memory.
 */
export function keepDrafts() {
  if (drafts) save();
  else if (!persist()) localStorage.removeItem(KEY);
}

/** dropDrafts forgets every draft, in memory and on disk (lock, revocation). */
export function dropDrafts() {
  drafts = null;
  localStorage.removeItem(KEY);
}
