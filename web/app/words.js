// Plain words for every error code the engine and its browser binding can
// produce (client/codes.go; README, "The browser API"): what the page shows
// instead of a code or a raw message. Keep errorWords one object literal
// with one `code: 'sentence',` per line: a Go test (words_test.go) reads
// the table and fails on a declared code without words, or words for a
// code that does not exist.
export const errorWords = {
  bad_handle: 'A handle is 3 to 32 lowercase letters, digits, “.”, “_” or “-”.',
  handle_taken: 'That handle is taken. Try another.',
  unknown_account: 'Nobody has that handle.',
  offline: 'Not connected to the Parley server right now. Try again in a moment.',
  link_expired: 'The link code has expired. Start again on the new device.',
  link_used: 'That link code was already used. Start again on the new device.',
  link_cancelled: 'Linking was cancelled.',
  link_rejected: 'The check code was rejected on the new device, so nothing was linked. Start again on the new device.',
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
  no_account: 'This browser has no Parley account yet. Create one or link this browser to your phone.',
  has_account: 'This browser already belongs to a Parley account.',
  revoked: 'This browser was removed from your account. Link it again from your primary device to keep using it here.',
  unknown_device: 'That device is no longer part of your account.',
  cannot_revoke_self: 'Your primary device cannot remove itself.',
  attestation_expired: 'Your primary device has not confirmed this browser for a while. Open Parley on your primary device to renew it.',
  safety_number_changed: 'This contact\'s safety number changed. Check it, then confirm before you send.',
  list_rollback: 'The server sent an out-of-date list of devices, which Parley refused. Nothing was sent.',
  bad_device_list: 'The server sent a list of devices that does not check out, which Parley refused. Nothing was sent.',
  list_withheld: 'This contact\'s devices changed, but the server has not sent their new list yet. Nothing was sent, so no removed device can read it. Try again later.',
  bad_bundle: 'One of the contact\'s devices offered keys that do not check out, so Parley did not use them.',
  identity_mismatch: 'A message claimed to come from a device whose keys do not match. Parley refused it.',
  session_setup_failed: 'A secure session could not be started with one of the contact\'s devices. Parley will try again.',
  decrypt_failed: 'A message could not be decrypted on this device. Parley has asked the sender\'s device to send it again.',
  malformed: 'Parley received something it could not read and set it aside. Nothing else was affected.',
  link_unknown: 'That linking attempt is no longer in progress. Start again on the new device.',
  bad_link_code: 'That is not a Parley link code. Copy the whole code shown on the new device.',
  relay_refused: 'The Parley server refused that request. Try again in a moment.',
  not_found: 'That is no longer available: it may have expired on the server.',
  storage: 'This browser could not save Parley\'s data. Nothing has been deleted. Free some disk space and try again.',
  internal: 'Something went wrong inside Parley. Nothing has been deleted. Try again, or reload the page.',
  bad_id: 'That message could not be found.',
  bad_attachment: 'That file\'s name, type or caption is too long.',
  attachment_too_large: 'That file is too large to send.',
  no_attachment: 'That message has no file.',
  attachment_tampered: 'The file was changed or is incomplete on the server, so Parley refused it.',
  attachment_unavailable: 'The file is no longer on the server: files are kept for 30 days.',
  quota_exceeded: 'Your account\'s file space on the server is full. Space frees up as files expire after 30 days.',
  unknown_group: 'This browser does not know that group.',
  not_group_member: 'You are not a member of this group.',
  group_full: 'The group already has the most members it can have.',
  group_change_refused: 'A change to the group did not check out, so Parley ignored it.',
  already_member: 'That person is already in the group.',
  not_member: 'That person is not in the group.',
  cannot_remove_admin: 'An admin of the group cannot be removed.',
  too_many_chains: 'A device sent more group keys than Parley keeps, so the extra ones were refused.',
  group_pending_full: 'Too many group messages are waiting for their keys; the newest one was set aside.',
  group_outdated: 'This group was made by an older version of Parley and can only be read now. Ask its admin to make the group again.',
  stale_chain: 'A member\'s device sent a group key made before someone was removed, so Parley refused it; its next message will bring a new one.',
  bad_state: 'That setting could not be saved: its value is out of range.',
  bad_setting: 'That setting could not be saved: its name or value is too long.',
  sync_too_large: 'Your settings and contacts are too large to copy to another device in one go.',
  sync_skipped: 'Some settings from your other devices were not understood and were skipped.',
  sync_key_unknown: 'A change from your other devices is waiting for its key and will apply once it arrives.',
  sync_refused: 'Settings from another account were ignored.',
  sync_malformed: 'A settings change from your other devices could not be read and was skipped.',
  sync_undecryptable: 'A settings change from your other devices could not be decrypted and was skipped.',
  sync_key_refused: 'A settings key that did not come from your primary device was ignored.',
  storage_unavailable: 'This browser is not letting Parley use its storage. Allow site data for this page and reload.',
  storage_corrupt: 'Some of Parley\'s data in this browser could not be read. Nothing has been deleted.',
  storage_key_missing: 'The key that unlocks Parley\'s data in this browser is gone. Nothing has been deleted. Re-link this browser.',
  identity_missing: 'This browser\'s device identity is gone. Nothing has been deleted. Re-link this browser.',
  storage_evicted: 'The browser deleted Parley\'s data on this device. Re-link this browser from your primary device.',
  storage_rolled_back: 'Some of Parley\'s security records in this browser were deleted or replaced by older copies, so Parley stopped. Nothing has been deleted.',
  locked: 'Parley is locked. Unlock it to continue.',
  not_ready: 'Parley is still starting. Try again in a moment.',
  wrong_lock_method: 'This browser is locked another way. Use the lock you set up.',
  no_lock: 'No lock is set up in this browser.',
  rekey_pending: 'Parley is still re-sealing this browser\'s data under the last lock change. Try again in a minute.',
  invalid_argument: 'Parley could not understand that request.',
  unknown_method: 'Parley does not know that request.',
};

/**
 * words is what the page says for a rejected call: the sentence of its
 * code, never the error's own text (a fetch's "TypeError: Failed to
 * fetch", a Go error chain), which is for logs, not people; anything
 * without a declared code is "internal".
 * @param {import("./types.js").ParleyError | any} err
 * @returns {string}
 */
export const words = (err) => errorWords[err && err.code] || errorWords.internal;

/**
 * handleWords is words for a call about one handle, naming it where the
 * code is about that handle (unknown_account: "Nobody has that handle").
 * The handle is what the user typed, never text from the error.
 * @param {import("./types.js").ParleyError | any} err
 * @param {string} handle
 */
export const handleWords = (err, handle) => (err && err.code === 'unknown_account'
  ? 'Nobody has the handle “' + handle + '”. Check its spelling with them.'
  : words(err));

// What to do about a storage error that stops the page (the problem view).
export const advice = {
  storage_corrupt: 'Nothing has been deleted. If this persists, restore the browser profile from a backup or re-link this browser from your primary device; your other devices are unaffected.',
  storage_key_missing: 'The key that unlocks this browser\'s Parley data is gone (the browser may have cleared part of its storage). Nothing has been deleted. Re-link this browser from your primary device.',
  identity_missing: 'This browser\'s device identity is gone while its storage key remains (partial storage eviction). Nothing has been deleted. Re-link this browser from your primary device.',
  storage_unavailable: 'This browser is not letting Parley use its storage (private mode or storage disabled). Allow site data for this page and reload.',
  storage_evicted: 'The browser deleted Parley\'s data on this device (storage eviction). Nothing else has been deleted. Re-link this browser from your primary device, and install Parley or allow persistent storage so it does not happen again.',
  storage_rolled_back: 'Someone or something changed Parley\'s stored keys in this browser behind its back (records deleted or put back from an older copy). Nothing has been deleted. Restore the browser profile from a recent backup, or re-link this browser from your primary device.',
  boot_failed: 'Reload the page. If it keeps failing, your browser may not support WebAssembly.',
};
