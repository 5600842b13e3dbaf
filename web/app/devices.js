// The "Linked devices" pane, and the banner that warns a companion before
// its attestation by the primary runs out.
import { $, clear, confirmDialog, formats, h, show, toast } from "/web/app/dom.js";
import { openPane } from "/web/app/nav.js";
import { P, ui } from "/web/app/state.js";
import { words } from "/web/app/words.js";

const DAY = 86400e3;
const WARN_BEFORE = 7 * DAY;

$('btn-devices').addEventListener('click', () => { openPane('devices'); loadDevices(); });

export async function loadDevices() {
  try {
    ui.devices = await P.devices();
  } catch (err) {
    if (err.code !== 'locked') $('devices-error').textContent = words(err);
    return;
  }
  renderDevices();
  renderExpiry();
}

function renderDevices() {
  const list = $('device-list');
  const primary = ui.st && ui.st.primary;
  // Re-rendering an unchanged list would move focus off its buttons.
  const key = JSON.stringify([primary, ui.devices]);
  if (key === ui.devicesKey) return;
  ui.devicesKey = key;
  clear(list);
  for (const d of ui.devices) {
    const facts = [
      d.primary ? 'Primary device' : 'Companion (browser)',
      'Added ' + formats().date.format(d.added * 1000),
    ];
    if (!d.primary) facts.push('Last confirmed by the primary ' + formats().date.format(d.attested * 1000));
    const item = h('li', { class: 'device' },
      h('div', {},
        h('strong', { text: d.name || 'Unnamed device' }),
        d.thisDevice ? h('span', { class: 'tag', text: 'This device' }) : null),
      h('p', { class: 'hint', text: facts.join(' · ') }));
    if (!d.primary && d.expires) {
      const left = d.expires * 1000 - Date.now();
      const soon = left < WARN_BEFORE;
      item.append(h('p', { class: soon ? 'warn-text' : 'hint', text: (left < 0 ? 'Retired since ' : 'Works until ') + formats().date.format(d.expires * 1000) + (soon && left >= 0 ? ' — soon. The primary must re-confirm it.' : '') }));
    }
    if (primary && !d.primary) {
      item.append(h('button', { type: 'button', class: 'danger', 'aria-label': 'Revoke ' + (d.name || 'device'), text: 'Revoke', onclick: () => revoke(d) }));
    }
    list.append(item);
  }
  show($('btn-reattest'), !!primary && ui.devices.some((d) => !d.primary));
}

async function revoke(d) {
  const ok = await confirmDialog('Revoke “' + (d.name || 'this device') + '”?',
    'It stops receiving messages at once and can no longer send as you. This cannot be undone; to use it again you link it again.', 'Revoke');
  if (!ok) return;
  $('devices-error').textContent = '';
  try {
    await P.revokeDevice(d.id);
    toast('“' + (d.name || 'Device') + '” was revoked.');
    await loadDevices();
  } catch (err) {
    $('devices-error').textContent = words(err);
  }
}

$('btn-reattest').addEventListener('click', async () => {
  try {
    await P.reattest();
    toast('Your companions are confirmed again.');
    await loadDevices();
  } catch (err) {
    $('devices-error').textContent = words(err);
  }
});

// renderExpiry warns a companion before its attestation runs out.
export function renderExpiry() {
  const me = ui.devices.find((d) => d.thisDevice);
  const b = $('banner-expiry');
  if (!me || me.primary || !me.expires || ui.view !== 'view-main') { show(b, false); return; }
  const left = me.expires * 1000 - Date.now();
  if (left > WARN_BEFORE) { show(b, false); return; }
  b.textContent = left < 0 || (ui.st && ui.st.expired)
    ? 'This browser\'s confirmation ran out. Open Parley on your primary device so it can confirm this browser again.'
    : 'This browser stops working on ' + formats().date.format(me.expires * 1000) + ' unless your primary device confirms it again: open Parley on the primary before then.';
  show(b);
}
