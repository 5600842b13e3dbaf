// Plain words for the engine's error codes that people meet (README, "The
// browser API"): what the page shows instead of a code. Keep errorWords one
// object literal with one `code: 'sentence',` per line: entries are added
// by hand and a Go test reads the table.
export const errorWords = {
  bad_handle: 'A handle is 3 to 32 lowercase letters, digits, “.”, “_” or “-”.',
  handle_taken: 'That handle is taken. Try another.',
  unknown_account: 'Nobody has that handle.',
  offline: 'Not connected to the Parley server right now. Try again in a moment.',
  link_expired: 'The link code has expired. Start again on the new device.',
  link_used: 'That link code was already used. Start again on the new device.',
  link_cancelled: 'Linking was cancelled.',
  link_check_failed: 'The link failed its security check. Start again on both devices.',
  too_many_devices: 'Your account already has the maximum number of devices. Remove one first.',
  not_primary: 'Only your primary device can do this.',
  wrong_passphrase: 'That passphrase is not right.',
  wrong_passkey: 'That passkey does not unlock this browser.',
  passkey_unsupported: 'This browser cannot use a passkey for the lock (it lacks the WebAuthn PRF extension). Use a passphrase.',
  passkey_failed: 'The passkey did not answer. Try again.',
  too_large: 'That file is too large.',
  too_long: 'That message is too long.',
  undecryptable: 'A message could not be read on this device. Parley has asked the sender\'s device to send it again.',
  upload_queue_full: 'Too many files are already waiting for the connection. Send this one once you are back online.',
  bad_name: 'A group name is 1 to 64 bytes: up to 64 letters, fewer with accents or emoji.',
  not_group_admin: 'Only an admin of the group can change it.',
  left_group: 'You left this group, so you cannot send to it. You can still read what is here.',
  admin_cannot_leave: 'An admin cannot leave the group yet: handing the group to another admin is not built, and without an admin nobody could change it.',
};

/**
 * words is what the page says for a rejected call.
 * @param {import("./types.js").ParleyError | any} err
 * @returns {string}
 */
export const words = (err) => errorWords[err && err.code] || (err && err.message) || String(err);

// What to do about a storage error that stops the page (the problem view).
export const advice = {
  storage_corrupt: 'Nothing has been deleted. If this persists, restore the browser profile from a backup or re-link this browser from your primary device; your other devices are unaffected.',
  storage_key_missing: 'The key that unlocks this browser\'s Parley data is gone (the browser may have cleared part of its storage). Nothing has been deleted. Re-link this browser from your primary device.',
  identity_missing: 'This browser\'s device identity is gone while its storage key remains (partial storage eviction). Nothing has been deleted. Re-link this browser from your primary device.',
  storage_unavailable: 'This browser is not letting Parley use its storage (private mode or storage disabled). Allow site data for this page and reload.',
  storage_evicted: 'The browser deleted Parley\'s data on this device (storage eviction). Nothing else has been deleted. Re-link this browser from your primary device, and install Parley or allow persistent storage so it does not happen again.',
  boot_failed: 'Reload the page. If it keeps failing, your browser may not support WebAssembly.',
};
