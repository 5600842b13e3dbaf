package client

import (
	"errors"
	"fmt"
)

// Error is an engine error with a stable code for the UI and the JS API
// ({code, message}) and a sentence for people.
type Error struct {
	Code    string
	Message string
	Err     error // the underlying cause, for errors.Is/As
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }
func (e *Error) Unwrap() error { return e.Err }

// Is matches another *Error with the same code, so callers can test
// errors.Is(err, client.ErrNotLinked) regardless of the message.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

func newError(code string, cause error, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...), Err: cause}
}

// Sentinel errors, by code.
var (
	ErrNoAccount        = &Error{Code: "no_account", Message: "this device has no account yet"}
	ErrHasAccount       = &Error{Code: "has_account", Message: "this device already belongs to an account"}
	ErrNotPrimary       = &Error{Code: "not_primary", Message: "only the primary device can do this"}
	ErrBadHandle        = &Error{Code: "bad_handle", Message: "a handle is 3 to 32 lowercase letters, digits, '.', '_' or '-'"}
	ErrUnknownAccount   = &Error{Code: "unknown_account", Message: "no such account on the relay"}
	ErrHandleTaken      = &Error{Code: "handle_taken", Message: "that handle is already registered"}
	ErrRevoked          = &Error{Code: "revoked", Message: "this device was removed from its account"}
	ErrSafetyChanged    = &Error{Code: "safety_number_changed", Message: "the contact's safety number changed; acknowledge it before sending"}
	ErrListRollback     = &Error{Code: "list_rollback", Message: "the relay served an older device list than one already seen"}
	ErrBadList          = &Error{Code: "bad_device_list", Message: "the relay served a device list that does not verify"}
	ErrLinkExpired      = &Error{Code: "link_expired", Message: "the link code has expired; start linking again"}
	ErrLinkUsed         = &Error{Code: "link_used", Message: "the link code was already used"}
	ErrLinkCancelled    = &Error{Code: "link_cancelled", Message: "linking was cancelled"}
	ErrLinkMismatch     = &Error{Code: "link_check_failed", Message: "the link handshake failed its check: the code or the relay was tampered with"}
	ErrLinkUnknown      = &Error{Code: "link_unknown", Message: "no link in progress with that id"}
	ErrRelayRefused     = &Error{Code: "relay_refused", Message: "the relay refused the request"}
	ErrOffline          = &Error{Code: "offline", Message: "not connected to the relay"}
	ErrTooLong          = &Error{Code: "too_long", Message: "the message is too long"}
	ErrStorage          = &Error{Code: "storage", Message: "storage failed"}
	ErrTooManyDevices   = &Error{Code: "too_many_devices", Message: "the account has the maximum number of devices"}
	ErrUnknownDevice    = &Error{Code: "unknown_device", Message: "no such device in the account"}
	ErrCannotRevokeSelf = &Error{Code: "cannot_revoke_self", Message: "the primary cannot revoke itself"}
)

// code returns the error code of err, or "internal".
func code(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return "internal"
}
