// The Settings pane: the lock (passphrase or passkey) and idle lock,
// notifications, and facts about this device.
import { $, show, toast } from "/web/app/dom.js";
import { keepDrafts } from "/web/app/drafts.js";
import { openPane } from "/web/app/nav.js";
import { renderNotify } from "/web/app/notify.js";
import { P, ui } from "/web/app/state.js";
import { words } from "/web/app/words.js";

$('btn-settings').addEventListener('click', () => { openPane('settings'); renderSettings(); });

async function renderSettings() {
  const st = ui.st || await P.state();
  const lock = st.lock || 'none';
  $('lock-' + lock).checked = true;
  show($('lock-passphrase-fields'), false);
  $('idle-lock').value = String(st.idleLockMs || 0);
  $('idle-lock').disabled = lock === 'none';
  show($('idle-hint'), lock === 'none');
  show($('btn-lock-now'), lock !== 'none');
  $('lock-status').textContent = lock === 'none' ? 'This browser is not locked.' : 'Locked with a ' + lock + '.';
  renderNotify();
  $('settings-fingerprint').textContent = ui.fingerprint || await P.deviceFingerprint().catch(() => '');
  $('settings-storage').textContent = st.persistent ? 'Storage on this browser is persistent.'
    : 'Storage on this browser is not persistent: the browser may delete Parley\'s data, and this device\'s keys with it, when disk space runs low. Install Parley as an app to keep them (your browser\'s menu: Install app, or Add to Home screen).';
  $('settings-version').textContent = 'Parley ' + P.version;
  $('settings-client-hash').textContent = st.clientHash || 'unknown (this browser could not hash the client)';
}

for (const r of document.querySelectorAll('input[name="lock"]')) {
  r.addEventListener('change', () => show($('lock-passphrase-fields'), $('lock-passphrase').checked));
}

$('form-lock').addEventListener('submit', async (e) => {
  e.preventDefault();
  const kind = document.querySelector('input[name="lock"]:checked')?.value || 'none';
  const status = $('lock-status');
  try {
    if (kind === 'passphrase') {
      const p1 = $('lock-pass1').value, p2 = $('lock-pass2').value;
      if (p1.length < 8) { status.textContent = 'Use at least 8 characters.'; $('lock-pass1').focus(); return; }
      if (p1 !== p2) { status.textContent = 'The two passphrases differ.'; $('lock-pass2').focus(); return; }
      status.textContent = 'Sealing…';
      await P.setLock({ passphrase: p1 });
      $('lock-pass1').value = $('lock-pass2').value = '';
    } else if (kind === 'passkey') {
      status.textContent = 'Follow your browser\'s passkey prompt…';
      await P.setLock({ passkey: true });
    } else {
      await P.setLock(null);
    }
    ui.st = await P.state();
    keepDrafts();
    await renderSettings();
    status.textContent = kind === 'none' ? 'The lock is off.' : 'Saved: this browser is locked with a ' + kind + '.';
  } catch (err) {
    status.textContent = words(err);
  }
});

$('idle-lock').addEventListener('change', async () => {
  try {
    await P.setIdleLock(Number($('idle-lock').value));
    toast('Saved.');
  } catch (err) {
    toast(words(err));
  }
});
$('btn-lock-now').addEventListener('click', () => P.lock().catch((err) => toast(words(err))));
