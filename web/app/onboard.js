// The welcome view of a browser with no account yet: create an account
// (this browser becomes the primary), or link to a primary device, which
// shows this browser's link code, then the check code for the user to
// confirm here (only then does this browser ask to join), and waits for
// the primary to confirm.
import { $, formats, lowercaseAsTyped, show, svgURL, toast } from "/web/app/dom.js";
import { hostOrigin } from "/web/app/embed.js";
import { setView } from "/web/app/nav.js";
import { embed, on, P, render, ui } from "/web/app/state.js";
import { words } from "/web/app/words.js";

export async function renderOnboard() {
  $('status').textContent = '';
  if (ui.view !== 'view-onboard') {
    setView('view-onboard');
    if (!ui.linking) {
      show($('onboard-choices'));
      show($('link-wait'), false);
    }
    const guess = deviceGuess();
    if (!$('create-device').value) $('create-device').value = guess;
    if (!$('link-device').value) $('link-device').value = guess;
  }
}

function deviceGuess() {
  const ua = navigator.userAgent;
  const os = /Android/.test(ua) ? 'Android' : /iPhone|iPad/.test(ua) ? 'iOS' : /Mac OS/.test(ua) ? 'Mac'
    : /Windows/.test(ua) ? 'Windows' : /Linux|CrOS/.test(ua) ? 'Linux' : '';
  const br = /Edg\//.test(ua) ? 'Edge' : /Firefox\//.test(ua) ? 'Firefox' : /Chrom/.test(ua) ? 'Chromium' : /Safari\//.test(ua) ? 'Safari' : 'Browser';
  return (embed ? 'Widget on ' + (hostOrigin() || 'a site') : br + (os ? ' on ' + os : '')).slice(0, 64);
}

lowercaseAsTyped($('create-handle'));
$('form-create').addEventListener('submit', async (e) => {
  e.preventDefault();
  const btn = e.submitter || $('form-create').querySelector('button');
  $('create-error').textContent = '';
  btn.disabled = true;
  try {
    await P.createAccount($('create-handle').value.trim(), $('create-device').value.trim());
    await render();
  } catch (err) {
    $('create-error').textContent = words(err);
  } finally {
    btn.disabled = false;
  }
});

// Linking this browser to a primary (the companion's side).

$('form-link').addEventListener('submit', async (e) => {
  e.preventDefault();
  const btn = $('form-link').querySelector('button');
  btn.disabled = true;
  try {
    await startLinking($('link-start-error'));
  } finally {
    btn.disabled = false;
  }
});
$('link-wait-title').tabIndex = -1;

// startLinking asks the engine for a link code and shows it; errors go to
// the element given (the form's, or the link pane's after an expired code).
async function startLinking(errorEl) {
  errorEl.textContent = '';
  try {
    const s = await P.startLink($('link-device').value.trim());
    ui.linking = true;
    $('link-qr').src = svgURL(s.qrSvg);
    $('link-payload').value = s.payload;
    $('link-expires').textContent = s.expires ? 'This code works until ' + formats().time.format(s.expires * 1000) + '.' : '';
    ui.historyStored = 0;
    show($('link-steps'));
    show($('link-offer'));
    show($('link-done'), false);
    show($('link-check'), false);
    show($('link-sync'), false);
    show($('link-status'), false);
    show($('link-expired'), false);
    show($('btn-link-restart'));
    $('link-error').textContent = '';
    show($('onboard-choices'), false);
    show($('link-wait'));
    $('link-wait-title').focus();
    waitLinked();
  } catch (err) {
    errorEl.textContent = words(err);
  }
}

async function waitLinked() {
  try {
    const linked = await P.waitLinked();
    showLinked(linked.handle, ui.historyStored);
  } catch (err) {
    show($('link-check-ask'), false);
    show($('link-check-wait'), false);
    show($('link-status'), false);
    if (err && err.code === 'link_expired') {
      showExpired();
      return;
    }
    $('link-error').textContent = err && err.code === 'link_rejected'
      ? 'Linking cancelled: you said the check codes do not match. This browser was not linked and the other device was told. Start over to show a new link code.'
      : words(err);
  }
}

// showLinked ends the story on this browser: whose account it joined and
// how much history came with it, and one way on, to the chats. Until the
// user takes it ui.linking holds the chat list back (shell.js).
function showLinked(handle, messages) {
  for (const id of ['link-steps', 'link-offer', 'link-check', 'link-sync', 'link-status', 'link-expired', 'btn-link-restart']) show($(id), false);
  $('link-error').textContent = '';
  $('link-done-text').textContent = 'Linked as ' + handle + ' — ' + messages + (messages === 1 ? ' message' : ' messages') + ' of history received';
  show($('link-done'));
  $('btn-link-done').focus();
}
$('btn-link-done').addEventListener('click', async () => {
  ui.linking = false;
  show($('link-done'), false);
  show($('link-wait'), false);
  show($('onboard-choices'));
  await render();
});

// showExpired takes the dead code away and offers one thing to do: get a
// new one (issue 15 item 5).
function showExpired() {
  for (const id of ['link-steps', 'link-offer', 'link-check', 'link-sync', 'btn-link-restart']) show($(id), false);
  $('link-error').textContent = '';
  show($('link-expired'));
  $('btn-link-new').focus();
}
$('btn-link-new').addEventListener('click', async () => {
  const btn = $('btn-link-new');
  btn.disabled = true;
  try {
    await startLinking($('link-error'));
  } finally {
    btn.disabled = false;
  }
});

// The engine retries the link channel by itself while the relay is
// unreachable (client/link.go, linkRetry) and says so.
on('link-connection', (e) => {
  if (ui.linking) show($('link-status'), e.code === 'offline');
});

// The check code of whoever answered the link code. Only the user can
// tell whether that was their own primary, so nothing is sent before
// they confirm it here.
on('link-check', (e) => {
  if (!ui.linking || e.linkId) return; // a primary's own link-check
  $('link-check-code').textContent = e.checkCode;
  // Answered: the link code is used up, and the steps are done; the check
  // code is what a phone's screen must show without scrolling.
  show($('link-offer'), false);
  show($('link-steps'), false);
  show($('link-check-ask'));
  show($('link-check-wait'), false);
  show($('link-check'));
  $('btn-link-code-confirm').focus();
});

$('btn-link-code-confirm').addEventListener('click', async () => {
  try {
    await P.confirmLinkCode();
    show($('link-check-ask'), false);
    show($('link-check-wait'));
  } catch (err) {
    $('link-error').textContent = words(err);
  }
});

$('btn-link-code-reject').addEventListener('click', async () => {
  show($('link-check-ask'), false);
  // waitLinked (above) then rejects with link_rejected and says so.
  await P.rejectLinkCode().catch((err) => { $('link-error').textContent = words(err); });
});

$('btn-copy-payload').addEventListener('click', async () => {
  const ta = $('link-payload');
  try {
    await navigator.clipboard.writeText(ta.value);
    toast('Link code copied.');
  } catch {
    ta.select(); // the user can copy the selection
    toast('Select the link code and copy it.');
  }
});

$('btn-link-restart').addEventListener('click', () => {
  // A code still waiting for an answer is rejected: the primary is told.
  if (!$('link-check').hidden && !$('link-check-ask').hidden) P.rejectLinkCode().catch(() => {});
  ui.linking = false;
  show($('link-wait'), false);
  show($('onboard-choices'));
  $('link-device').focus();
});

on('sync-progress', (e) => {
  if (!ui.linking) return;
  show($('link-sync'));
  const p = $('link-progress');
  if (e.total) { p.max = e.total; p.value = e.done || 0; }
  p.setAttribute('aria-valuetext', e.text === 'download' ? 'Downloading history' : 'Saving history');
  if (e.text === 'store') ui.historyStored = e.done || 0; // messages stored so far
});
