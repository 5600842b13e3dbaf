// The "Link a device" pane of the primary: take the new device's link code
// (pasted, or scanned with the camera in scan.js), show the check code to
// compare, and link the device once the user confirms it matches.
import { loadDevices } from "/web/app/devices.js";
import { $, show } from "/web/app/dom.js";
import { openPane } from "/web/app/nav.js";
import { on, P, ui } from "/web/app/state.js";
import { words } from "/web/app/words.js";

$('btn-link-device').addEventListener('click', () => {
  openPane('link');
  resetApprove();
  $('approve-payload').focus();
});

function resetApprove() {
  ui.pendingLink = null;
  ui.approving = false;
  $('approve-payload').value = '';
  show($('approve-steps'));
  show($('form-approve'));
  show($('btn-scan'));
  show($('approve-check'), false);
  $('approve-status').textContent = '';
  $('approve-error').textContent = '';
}

$('form-approve').addEventListener('submit', async (e) => {
  e.preventDefault();
  $('approve-error').textContent = '';
  $('approve-status').textContent = 'Contacting the new device…';
  ui.approving = true;
  try {
    // link-check (below) shows the code while the new device's user
    // compares it; this resolves once they confirmed it there.
    const p = await P.approveLink($('approve-payload').value.trim());
    if (!ui.approving) return; // cancelled meanwhile
    ui.approving = false;
    ui.pendingLink = p;
    $('approve-status').textContent = '';
    $('approve-name').textContent = p.deviceName || 'Unnamed device';
    $('approve-code').textContent = p.checkCode;
    // The steps are done; the code is what a phone's screen must show
    // without scrolling.
    show($('approve-steps'), false);
    show($('form-approve'), false);
    show($('btn-scan'), false);
    show($('approve-device'));
    show($('approve-wait'), false);
    show($('approve-ask'));
    show($('btn-approve-confirm'));
    show($('approve-check'));
    $('btn-approve-confirm').focus();
  } catch (err) {
    if (!ui.approving) return; // the Cancel button said so already
    const rejected = err && err.code === 'link_rejected';
    resetApprove();
    $('approve-error').textContent = rejected
      ? 'The new device said the check codes do not match and cancelled. Nothing was linked. If you started this link, start again on the new device.'
      : words(err);
  }
});

// The engine retries the link channel by itself while the relay is
// unreachable (client/link.go, linkRetry); the status line says so and
// comes back once it answers again.
let statusBeforeOutage = '';
on('link-connection', (e) => {
  if (!ui.approving) return;
  if (e.code === 'offline') {
    statusBeforeOutage = $('approve-status').textContent;
    $('approve-status').textContent = 'Reconnecting…';
  } else if ($('approve-status').textContent === 'Reconnecting…') {
    $('approve-status').textContent = statusBeforeOutage;
  }
});

// The code is shown as soon as the hello is sent, before the new device
// has answered: its user compares it with this screen.
on('link-check', (e) => {
  if (!ui.approving || !e.linkId) return;
  ui.pendingLink = { linkId: e.linkId, checkCode: e.checkCode, deviceName: '' };
  $('approve-status').textContent = 'Waiting for the new device…';
  $('approve-code').textContent = e.checkCode;
  show($('approve-steps'), false);
  show($('form-approve'), false);
  show($('btn-scan'), false);
  show($('approve-device'), false);
  show($('approve-ask'), false);
  show($('btn-approve-confirm'), false);
  show($('approve-wait'));
  show($('approve-check'));
});

$('btn-approve-confirm').addEventListener('click', async () => {
  const p = ui.pendingLink;
  if (!p || ui.approving) return;
  $('btn-approve-confirm').disabled = true;
  $('approve-status').textContent = 'Linking and sending your recent history…';
  try {
    await P.confirmLink(p.linkId);
    show($('approve-check'), false);
    $('approve-status').textContent = '“' + (p.deviceName || 'The device') + '” is linked.';
    ui.pendingLink = null;
    await loadDevices();
  } catch (err) {
    $('approve-status').textContent = '';
    $('approve-error').textContent = words(err);
  } finally {
    $('btn-approve-confirm').disabled = false;
  }
});
$('btn-approve-cancel').addEventListener('click', async () => {
  const p = ui.pendingLink;
  ui.approving = false;
  if (p) await P.cancelLink(p.linkId).catch(() => {});
  resetApprove();
  $('approve-status').textContent = 'Linking cancelled.';
  $('approve-payload').focus();
});
