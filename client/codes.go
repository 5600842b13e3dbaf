package client

import "slices"

// Code is a stable engine error code: the code of an *Error (the JS API
// rejects with {code, message}) and of an "error" Event. Codes are a
// contract with the UI, which words each one for people (errorWords in
// web/app/words.js; a test fails if one has no sentence), so every code
// the engine can produce is declared here and nowhere else, as the relay's
// are in relay/codes.go.
type Code string

// Account and device.
const (
	CodeNoAccount        Code = "no_account"         // the device has no account yet
	CodeHasAccount       Code = "has_account"        // the device already has one
	CodeNotPrimary       Code = "not_primary"        // only the primary may do this
	CodeBadHandle        Code = "bad_handle"         // not a valid handle
	CodeUnknownAccount   Code = "unknown_account"    // no such handle on the relay
	CodeHandleTaken      Code = "handle_taken"       // registered already
	CodeRevoked          Code = "revoked"            // this device was removed
	CodeTooManyDevices   Code = "too_many_devices"   // the list is full
	CodeUnknownDevice    Code = "unknown_device"     // no such device in the account
	CodeCannotRevokeSelf Code = "cannot_revoke_self" // the primary revoking itself
	// CodeAttestationExpired is a "state" event's code, not an error: the
	// primary has not re-attested this companion in time.
	CodeAttestationExpired Code = "attestation_expired"
	CodeBadName            Code = "bad_name" // a device, contact or group name out of bounds
)

// Contacts, lists and sessions.
const (
	CodeSafetyChanged    Code = "safety_number_changed" // acknowledge the new safety number first
	CodeListRollback     Code = "list_rollback"         // the relay served an older device list
	CodeBadList          Code = "bad_device_list"       // a device list that does not verify
	CodeListWithheld     Code = "list_withheld"         // a contact announced a newer device list than the relay serves
	CodeBadBundle        Code = "bad_bundle"            // a prekey bundle that does not verify
	CodeIdentityMismatch Code = "identity_mismatch"     // a session start under another identity key
	CodeSessionSetup     Code = "session_setup_failed"  // a session start that could not be opened
	CodeDecryptFailed    Code = "decrypt_failed"        // a message that failed to decrypt
	CodeUndecryptable    Code = "undecryptable"         // event: a message could not be read; a resend was asked for
	CodeMalformed        Code = "malformed"             // a payload or request that does not parse
)

// Linking.
const (
	CodeLinkExpired   Code = "link_expired"      // the link code's lifetime is over
	CodeLinkUsed      Code = "link_used"         // the link code was used already
	CodeLinkCancelled Code = "link_cancelled"    // linking was cancelled
	CodeLinkMismatch  Code = "link_check_failed" // the handshake failed its check
	CodeLinkUnknown   Code = "link_unknown"      // no link in progress with that id
	CodeBadLinkCode   Code = "bad_link_code"     // not a Parley link code
	CodeLinkRejected  Code = "link_rejected"     // the companion's user said the check codes differ
)

// The relay and storage.
const (
	CodeRelayRefused Code = "relay_refused" // a refusal with no more specific code
	CodeOffline      Code = "offline"       // not connected to the relay
	CodeNotFound     Code = "not_found"     // no such message, or expired on the relay
	CodeStorage      Code = "storage"       // the device's storage failed
	CodeInternal     Code = "internal"      // anything else: a bug, reported as such
)

// Messages and attachments.
const (
	CodeTooLong            Code = "too_long"               // a text over MaxTextLen
	CodeBadID              Code = "bad_id"                 // not a message id
	CodeBadAttachment      Code = "bad_attachment"         // attachment metadata out of bounds
	CodeAttachmentTooLarge Code = "attachment_too_large"   // a file over MaxAttachmentSize
	CodeNoAttachment       Code = "no_attachment"          // the message has no attachment
	CodeAttachmentTampered Code = "attachment_tampered"    // the blob was altered or is incomplete
	CodeAttachmentGone     Code = "attachment_unavailable" // the blob expired on the relay
	CodeQuotaExceeded      Code = "quota_exceeded"         // the account's blob quota is full
	CodeUploadQueueFull    Code = "upload_queue_full"      // too many files wait for a connection
)

// Groups.
const (
	CodeUnknownGroup       Code = "unknown_group"        // no such group on this device
	CodeNotGroupAdmin      Code = "not_group_admin"      // only an admin device may change it
	CodeNotGroupMember     Code = "not_group_member"     // this account is not a member
	CodeGroupFull          Code = "group_full"           // at MaxGroupMembers
	CodeGroupChangeRefused Code = "group_change_refused" // a received group change did not verify
	CodeLeftGroup          Code = "left_group"           // this account left the group
	CodeAdminCannotLeave   Code = "admin_cannot_leave"   // an admin leaving would orphan it
	CodeAlreadyMember      Code = "already_member"       // adding a member twice
	CodeNotMember          Code = "not_member"           // removing a non-member
	CodeCannotRemoveAdmin  Code = "cannot_remove_admin"  // removing an admin
	CodeTooManyChains      Code = "too_many_chains"      // event: a device distributed too many sender chains
	CodeGroupPendingFull   Code = "group_pending_full"   // group messages waiting for their sender key are at the cap
	CodeGroupOutdated      Code = "group_outdated"       // a group of format 1, whose id is bound to no creator: read-only
	CodeStaleChain         Code = "stale_chain"          // event: a sender chain made for a group state a removal replaced
)

// State sync.
const (
	CodeBadState          Code = "bad_state"          // a synced value out of bounds
	CodeBadSetting        Code = "bad_setting"        // a setting name or value out of bounds
	CodeSyncTooLarge      Code = "sync_too_large"     // the synced state is over a snapshot's size
	CodeSyncSkipped       Code = "sync_skipped"       // event: sync entries not understood were skipped
	CodeSyncKeyUnknown    Code = "sync_key_unknown"   // event: a change waits for its sync key
	CodeSyncRefused       Code = "sync_refused"       // event: state sync from another account, ignored
	CodeSyncMalformed     Code = "sync_malformed"     // event: a state-sync change that does not parse
	CodeSyncUndecryptable Code = "sync_undecryptable" // event: a state-sync change that does not open
	CodeSyncKeyRefused    Code = "sync_key_refused"   // event: a sync key not from the primary, ignored
)

// The browser binding (wasm/): storage and lock failures the page explains,
// and refusals of the JS API itself. None of the storage ones ever deletes
// anything.
const (
	CodeStorageUnavailable Code = "storage_unavailable" // IndexedDB cannot be opened
	CodeStorageCorrupt     Code = "storage_corrupt"     // a record failed to unseal or decode
	CodeStorageKeyMissing  Code = "storage_key_missing" // the storage key is gone, the data is not
	CodeIdentityMissing    Code = "identity_missing"    // the device identity is gone, the key is not
	CodeStorageEvicted     Code = "storage_evicted"     // the browser evicted Parley's data
	CodeStorageRolledBack  Code = "storage_rolled_back" // security records deleted or replaced by older copies
	CodeLocked             Code = "locked"              // the profile is locked
	CodeNotReady           Code = "not_ready"           // the engine is still starting
	CodeWrongPassphrase    Code = "wrong_passphrase"    // the lock's passphrase did not open it
	CodeWrongPasskey       Code = "wrong_passkey"       // the passkey did not open it
	CodeWrongLockMethod    Code = "wrong_lock_method"   // unlocking with the other lock kind
	CodeNoLock             Code = "no_lock"             // no lock is set
	CodeRekeyPending       Code = "rekey_pending"       // too many lock changes while a re-seal runs
	CodePasskeyUnsupported Code = "passkey_unsupported" // no WebAuthn PRF in this browser
	CodePasskeyFailed      Code = "passkey_failed"      // the passkey did not answer
	CodeInvalidArgument    Code = "invalid_argument"    // a JS API argument of the wrong shape
	CodeUnknownMethod      Code = "unknown_method"      // no such JS API method
	CodeTooLarge           Code = "too_large"           // a file over what the page hands over
)

// codes lists every declared code once; Codes returns it.
var codes = []Code{
	CodeNoAccount, CodeHasAccount, CodeNotPrimary, CodeBadHandle, CodeUnknownAccount,
	CodeHandleTaken, CodeRevoked, CodeTooManyDevices, CodeUnknownDevice,
	CodeCannotRevokeSelf, CodeAttestationExpired, CodeBadName,
	CodeSafetyChanged, CodeListRollback, CodeBadList, CodeListWithheld, CodeBadBundle, CodeIdentityMismatch,
	CodeSessionSetup, CodeDecryptFailed, CodeUndecryptable, CodeMalformed,
	CodeLinkExpired, CodeLinkUsed, CodeLinkCancelled, CodeLinkMismatch, CodeLinkUnknown,
	CodeBadLinkCode, CodeLinkRejected,
	CodeRelayRefused, CodeOffline, CodeNotFound, CodeStorage, CodeInternal,
	CodeTooLong, CodeBadID, CodeBadAttachment, CodeAttachmentTooLarge, CodeNoAttachment,
	CodeAttachmentTampered, CodeAttachmentGone, CodeQuotaExceeded, CodeUploadQueueFull,
	CodeUnknownGroup, CodeNotGroupAdmin, CodeNotGroupMember, CodeGroupFull,
	CodeGroupChangeRefused, CodeLeftGroup, CodeAdminCannotLeave, CodeAlreadyMember,
	CodeNotMember, CodeCannotRemoveAdmin, CodeTooManyChains, CodeGroupPendingFull,
	CodeGroupOutdated, CodeStaleChain,
	CodeBadState, CodeBadSetting, CodeSyncTooLarge, CodeSyncSkipped, CodeSyncKeyUnknown,
	CodeSyncRefused, CodeSyncMalformed, CodeSyncUndecryptable, CodeSyncKeyRefused,
	CodeStorageUnavailable, CodeStorageCorrupt, CodeStorageKeyMissing, CodeIdentityMissing,
	CodeStorageEvicted, CodeStorageRolledBack, CodeLocked, CodeNotReady, CodeWrongPassphrase, CodeWrongPasskey,
	CodeWrongLockMethod, CodeNoLock, CodeRekeyPending, CodePasskeyUnsupported, CodePasskeyFailed,
	CodeInvalidArgument, CodeUnknownMethod, CodeTooLarge,
}

// Codes returns every engine error code, in declaration order.
func Codes() []Code { return slices.Clone(codes) }
