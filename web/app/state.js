// What the views share: the client's API, the page's UI state, and the two
// things every view may ask for without importing the views above it (an
// engine event listener, a redraw). Views import downward only: the server
// versions each module by its content, imports included, which an import
// cycle would make impossible.

/** @type {import("./types.js").Parley} */
export const P = window.parley;

export const params = new URLSearchParams(location.search);
// The embed widget (?embed=1, inside an iframe web/embed.js mounts on
// another site; see embed.js).
export const embed = params.get('embed') === '1';

export const ui = {
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
  approving: false,     // primary: approveLink waits for the new device's answer
  linking: false,       // companion: a link is in progress, or done and not yet left
  historyStored: 0,     // companion: messages of history stored by this link
  fingerprint: '',
};

// on queues an engine event listener: the Go side adds parley.on once the
// wasm runs, after these modules; main() subscribes them all after ready.
const pendingListeners = [];
/**
 * @template {keyof import("./types.js").ParleyEvents} E
 * @param {E} event
 * @param {(e: import("./types.js").ParleyEvents[E]) => void} fn
 */
export const on = (event, fn) => pendingListeners.push([event, fn]);
export function subscribe() {
  for (const [event, fn] of pendingListeners) P.on(event, fn);
}

// render redraws the page from state(); the top-level view (shell.js)
// says how, with setRenderer. Calls are serialized so events arriving in
// a burst cannot interleave two renders.
let renderNow = async () => {};
let rendering = Promise.resolve();
export function render() {
  rendering = rendering.then(renderNow, renderNow);
  return rendering;
}
export function setRenderer(fn) { renderNow = fn; }

// chatName is what a chat is called: a group's name, or the contact's
// handle, which is the chat's id.
export function chatName(id) {
  if (id.startsWith('g:')) {
    const c = ui.chats.find((x) => x.id === id);
    const g = ui.groups.get(id);
    return (g && g.name) || (c && c.name) || 'Group';
  }
  return id;
}
