// Safety numbers: the contact pane (digits and QR code), and the banner of
// a chat whose contact's safety number changed, which pauses sending until
// the user acknowledges it.
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
    $('safety-text').textContent = 'The safety number with ' + c + ' has changed. They may have reinstalled Parley, or someone may be trying to intercept your messages. Sending is paused until you acknowledge it; compare the new number with ' + c + ' to be sure.';
  }
}

async function acknowledge(handle) {
  try {
    await P.acknowledgeSafetyNumber(handle);
    ui.changed.delete(handle);
    renderSafety();
    show($('contact-changed'), false);
    toast('Sending to ' + handle + ' is on again.');
    return true;
  } catch (err) {
    toast(words(err));
    return false;
  }
}

$('btn-safety-ack').addEventListener('click', async () => {
  if (ui.chat && await acknowledge(ui.chat)) $('composer-text').focus();
});
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
  $('contact-digits').textContent = '…';
  $('contact-qr').removeAttribute('src');
  $('contact-error').textContent = '';
  show($('contact-changed'), ui.changed.has(handle));
  try {
    const sn = await P.safetyNumber(handle);
    $('contact-digits').textContent = sn.digits;
    $('contact-qr').src = svgURL(sn.qrSvg);
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
