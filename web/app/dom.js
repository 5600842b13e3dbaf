// Small DOM helpers every view uses. Text goes in with textContent (never
// innerHTML), so a message can never become markup.

/** @type {(id: string) => HTMLElement} */
export const $ = (id) => document.getElementById(id);

export const show = (el, on = true) => { el.hidden = !on; };
export const clear = (el) => { while (el.firstChild) el.removeChild(el.firstChild); };

// h makes an element: attrs are attributes, except class, text (its
// textContent) and on<event> (a listener); false or null leaves one out.
export function h(tag, attrs = {}, ...kids) {
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
// lowercaseAsTyped makes a handle field forgiving: capitals typed (or
// capitalised by a phone keyboard) become lowercase as they are typed, so
// the field's pattern never refuses "Bob" with the browser's own message.
export function lowercaseAsTyped(el) {
  el.addEventListener('input', () => {
    const v = el.value, low = v.toLowerCase();
    if (v === low) return;
    const { selectionStart: a, selectionEnd: b } = el;
    el.value = low;
    el.setSelectionRange(a, b);
  });
}
export const svgURL = (svg) => 'data:image/svg+xml;charset=utf-8,' + encodeURIComponent(svg);
export const dayKey = (ms) => new Date(ms).toDateString();
// The page's first Intl.DateTimeFormat loads the locale's data: 10-30 ms
// of main thread in a Chrome trace, which at start-up is the time the
// client needs to become ready. Nothing before ready formats a date, so
// the formatters are made on first use, and loadChats makes them while
// the engine reads the chat list (the main thread only waits then).
let fmts = null;
export function formats() {
  fmts ??= {
    time: new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' }),
    date: new Intl.DateTimeFormat(undefined, { day: 'numeric', month: 'short', year: 'numeric' }),
    day: new Intl.DateTimeFormat(undefined, { weekday: 'long', day: 'numeric', month: 'long' }),
  };
  return fmts;
}
export function dayLabel(ms) {
  const d = new Date(ms), today = new Date();
  const yesterday = new Date(); yesterday.setDate(today.getDate() - 1);
  if (d.toDateString() === today.toDateString()) return 'Today';
  if (d.toDateString() === yesterday.toDateString()) return 'Yesterday';
  return formats().day.format(d);
}
export const shortTime = (ms) => (dayKey(ms) === dayKey(Date.now()) ? formats().time.format(ms) : formats().date.format(ms));
export const fmtSize = (n) => (n < 1024 ? n + ' B' : n < 1 << 20 ? (n / 1024).toFixed(0) + ' KB' : (n / (1 << 20)).toFixed(1) + ' MB');

let toastTimer = 0;
export function toast(text) {
  const t = $('toast');
  t.textContent = text;
  show(t);
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => show(t, false), 6000);
}

// confirmDialog asks a yes/no question in a modal <dialog> (focus stays in
// it, Escape cancels) and resolves true for yes.
export function confirmDialog(title, text, ok) {
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
