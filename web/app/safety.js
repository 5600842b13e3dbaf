// Safety numbers: the contact pane (digits and QR code), and the banner of
// a chat whose contact's safety number changed, which pauses sending until
// the user acknowledges it. Acknowledging happens only on the pane that
// shows the new number, and passes back the digits shown: the engine pins
// exactly the key they were made from (PROTOCOL.md 2.5).
import { $, show, svgURL, toast } from "/web/app/dom.js";
import { openPane } from "/web/app/nav.js";
import { on, P, ui } from "/web/app/state.js";
import { words } from "/web/app/words.js";

// renderSafety shows the banner for an open chat whose contact's safety
// number changed; sending stays off until the user acknowledges it.
export function renderSafety() {
  const c = ui.chat;
  const changed = !!c && ui.changed.has(c);
  show($('safety-banner'), changed);
  $('composer-send').disabled = changed;
  $('composer-text').disabled = changed;
  $('composer-file').disabled = changed;
  if (changed) {
    $('safety-text').textContent = 'The safety number with ' + c + ' has changed. They may have reinstalled Parley, or someone may be trying to intercept your messages. Sending is paused until you review the new number and acknowledge it; compare it with ' + c + ' to be sure.';
  }
}

// shown is the safety number the contact pane displays: {handle, digits}.
let shown = null;

async function acknowledge(handle) {
  if (!shown || shown.handle !== handle) return false;
  try {
    await P.acknowledgeSafetyNumber(handle, shown.digits);
    ui.changed.delete(handle);
    renderSafety();
    show($('contact-changed'), false);
    toast('Sending to ' + handle + ' is on again.');
    return true;
  } catch (err) {
    // The number changed again since it was shown: show the new one.
    toast(words(err));
    if (err.code === 'safety_number_changed') openContact(handle);
    return false;
  }
}

$('btn-safety-review').addEventListener('click', () => openContact(ui.chat));
$('btn-contact-ack').addEventListener('click', async () => {
  const who = $('contact-title').dataset.handle;
  if (await acknowledge(who)) openContact(who);
});

export async function openContact(handle) {
  ui.contactFrom = handle;
  openPane('contact');
  $('contact-title').textContent = handle;
  $('contact-title').dataset.handle = handle;
  shown = null;
  $('contact-digits').textContent = '…';
  $('contact-qr').removeAttribute('src');
  $('btn-contact-ack').disabled = true;
  $('contact-error').textContent = '';
  show($('contact-changed'), ui.changed.has(handle));
  try {
    const sn = await P.safetyNumber(handle);
    if (ui.contactFrom !== handle) return; // another contact opened meanwhile
    shown = { handle, digits: sn.digits };
    $('contact-digits').textContent = sn.digits;
    $('contact-qr').src = svgURL(sn.qrSvg);
    $('btn-contact-ack').disabled = false;
  } catch (err) {
    $('contact-digits').textContent = '';
    if (err.code === 'safety_number_changed') {
      ui.changed.add(handle);
      show($('contact-changed'));
    } else {
      $('contact-error').textContent = words(err);
    }
  }
}

on('safety-number-changed', (e) => {
  ui.changed.add(e.chatId);
  if (ui.chat === e.chatId) renderSafety();
  else toast('The safety number with ' + e.chatId + ' changed.');
});
