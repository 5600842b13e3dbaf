// Notifications of new messages while Parley is in the background, and
// their switch in Settings.
import { openChat } from "/web/app/conversation.js";
import { $, show } from "/web/app/dom.js";

const notifyOn = () => typeof Notification !== 'undefined' && Notification.permission === 'granted' && localStorage.getItem('parley.notify') !== '0';

export function renderNotify() {
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

/** @param {import("./types.js").Message} m */
export function notify(m) {
  if (!document.hidden || !notifyOn() || m.outgoing) return;
  // The sender's handle only: a notification is drawn by the OS, outside
  // the encrypted store, and may show on a lock screen.
  const n = new Notification('Parley', { body: 'New message from ' + m.from, tag: m.chatId, icon: '/web/icons/icon-192.png' });
  n.onclick = () => { window.focus(); openChat(m.chatId); n.close(); };
}
