// The page: everything it shows comes from window.parley, the client's only
// API. This is the foundation's minimal view (device fingerprint and error
// states); the messenger UI builds on the same calls.
const $ = (id) => document.getElementById(id);

const advice = {
  storage_corrupt: 'Nothing has been deleted. If this persists, restore the browser profile from a backup or re-link this browser from your primary device; your other devices are unaffected.',
  storage_key_missing: 'The key that unlocks this browser\'s Parley data is gone (the browser may have cleared part of its storage). Nothing has been deleted. Re-link this browser from your primary device.',
  identity_missing: 'This browser\'s device identity is gone while its storage key remains (partial storage eviction). Nothing has been deleted. Re-link this browser from your primary device.',
  storage_unavailable: 'This browser is not letting Parley use its storage (private mode or storage disabled). Allow site data for this page and reload.',
  storage_evicted: 'The browser deleted Parley\'s data on this device (storage eviction). Nothing else has been deleted. Re-link this browser from your primary device, and install Parley or allow persistent storage so it does not happen again.',
  boot_failed: 'Reload the page. If it keeps failing, your browser may not support WebAssembly.',
};

function showProblem(err) {
  $('status').textContent = 'Parley cannot open this device\'s data.';
  $('problem-message').textContent = err.message || String(err);
  $('problem-advice').textContent = advice[err.code] || 'Nothing has been deleted. Reload the page to retry.';
  $('problem').hidden = false;
}

let listening = false;

async function main() {
  try {
    await window.parley.ready;
  } catch (err) {
    showProblem(err);
    return;
  }
  if (!listening) {
    listening = true;
    // Lock, unlock and storage errors change what the page can show.
    window.parley.on('state', () => { $('device').hidden = true; $('problem').hidden = true; main(); });
  }
  const st = await window.parley.state();
  if (st.status === 'error') {
    showProblem(st.error);
    return;
  }
  if (st.status === 'locked') {
    $('status').textContent = 'Parley is locked on this browser.';
    return;
  }
  // The state can change (an idle lock) between the two calls; the state
  // event then renders again.
  const fp = await window.parley.deviceFingerprint().catch(() => null);
  if (fp === null) return;
  $('fingerprint').textContent = fp;
  $('persist').textContent = st.persistent
    ? 'Storage on this browser is marked persistent.'
    : 'This browser has not granted persistent storage; it may clear Parley\'s data under storage pressure.';
  $('status').textContent = 'Ready. Parley ' + window.parley.version;
  $('device').hidden = false;
}

main();
