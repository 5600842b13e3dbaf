// The "Link a device" pane of the primary: take the new device's link code
// (pasted, or scanned with the camera in scan.js), show the check code to
// compare, and link the device once the user confirms it matches.
import { loadDevices } from "/web/app/devices.js";
import { $, show } from "/web/app/dom.js";
import { openPane } from "/web/app/nav.js";
import { P, ui } from "/web/app/state.js";
import { words } from "/web/app/words.js";

$('btn-link-device').addEventListener('click', () => {
  openPane('link');
  resetApprove();
  $('approve-payload').focus();
});

function resetApprove() {
  ui.pendingLink = null;
  $('approve-payload').value = '';
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
  try {
    const p = await P.approveLink($('approve-payload').value.trim());
    ui.pendingLink = p;
    $('approve-status').textContent = '';
    $('approve-name').textContent = p.deviceName || 'Unnamed device';
    $('approve-code').textContent = p.checkCode;
    show($('form-approve'), false);
    show($('btn-scan'), false);
    show($('approve-check'));
    $('btn-approve-confirm').focus();
  } catch (err) {
    $('approve-status').textContent = '';
    $('approve-error').textContent = words(err);
  }
});

$('btn-approve-confirm').addEventListener('click', async () => {
  const p = ui.pendingLink;
  if (!p) return;
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
  if (p) await P.cancelLink(p.linkId).catch(() => {});
  resetApprove();
  $('approve-status').textContent = 'Linking cancelled.';
  $('approve-payload').focus();
});
