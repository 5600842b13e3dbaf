// The Parley page. Everything it shows comes from window.parley, the
// client's only API (README, "The browser API"; declared in app/types.js);
// these modules hold no keys and no protocol, only views. Plain DOM, no
// framework: each screen is a section of index.html shown or hidden, and
// each has a module of its own under app/, which registers its listeners
// when it loads. This entry wires the few things that cross views and
// starts the page once the client is ready.
//
// The same page runs three ways: a tab, an installed app (the service
// worker, web/sw.js, starts it offline), and the embed widget (?embed=1,
// inside an iframe that web/embed.js mounts on another site; app/embed.js).
//
// Imports name "/web/..." paths in double quotes: the server rewrites them
// to content-versioned URLs (server/static.go), as it does in index.html,
// and web/sw.js precaches every module.
import { openChat } from "/web/app/conversation.js";
import { $ } from "/web/app/dom.js";
import { postHost, startEmbed } from "/web/app/embed.js";
import "/web/app/events.js";
import "/web/app/link.js";
import "/web/app/lock.js";
import { openPane } from "/web/app/nav.js";
import "/web/app/newchat.js";
import "/web/app/settings.js";
import { showProblem } from "/web/app/shell.js";
import { embed, P, render, subscribe, ui } from "/web/app/state.js";

// Back from a pane: to the chat a contact or group pane was opened from,
// else to the chat list.
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

startEmbed(openChat);

async function main() {
  try {
    await P.ready;
  } catch (err) {
    showProblem(err);
    return;
  }
  subscribe();
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
