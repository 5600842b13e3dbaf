package client

import (
	"errors"
	"fmt"
)

// Error is an engine error with a stable code for the UI and the JS API
// ({code, message}) and a sentence for people.
type Error struct {
	Code    Code
	Message string
	Err     error // the underlying cause, for errors.Is/As
}

func (e *Error) Error() string { return string(e.Code) + ": " + e.Message }
func (e *Error) Unwrap() error { return e.Err }

// Is matches another *Error with the same code, so callers can test
// errors.Is(err, client.ErrNotLinked) regardless of the message.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

func newError(code Code, cause error, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...), Err: cause}
}

// Sentinel errors, by code.
var (
	ErrNoAccount        = &Error{Code: CodeNoAccount, Message: "this device has no account yet"}
	ErrHasAccount       = &Error{Code: CodeHasAccount, Message: "this device already belongs to an account"}
	ErrNotPrimary       = &Error{Code: CodeNotPrimary, Message: "only the primary device can do this"}
	ErrBadHandle        = &Error{Code: CodeBadHandle, Message: "a handle is 3 to 32 lowercase letters, digits, '.', '_' or '-'"}
	ErrUnknownAccount   = &Error{Code: CodeUnknownAccount, Message: "no such account on the relay"}
	ErrHandleTaken      = &Error{Code: CodeHandleTaken, Message: "that handle is already registered"}
	ErrRevoked          = &Error{Code: CodeRevoked, Message: "this device was removed from its account"}
	ErrSafetyChanged    = &Error{Code: CodeSafetyChanged, Message: "the contact's safety number changed; acknowledge it before sending"}
	ErrListRollback     = &Error{Code: CodeListRollback, Message: "the relay served an older device list than one already seen"}
	ErrBadList          = &Error{Code: CodeBadList, Message: "the relay served a device list that does not verify"}
	ErrListWithheld     = &Error{Code: CodeListWithheld, Message: "the contact's devices changed but the relay has not served their new list; nothing is sent until it does"}
	ErrLinkExpired      = &Error{Code: CodeLinkExpired, Message: "the link code has expired; start linking again"}
	ErrLinkUsed         = &Error{Code: CodeLinkUsed, Message: "the link code was already used"}
	ErrLinkCancelled    = &Error{Code: CodeLinkCancelled, Message: "linking was cancelled"}
	ErrLinkMismatch     = &Error{Code: CodeLinkMismatch, Message: "the link handshake failed its check: the code or the relay was tampered with"}
	ErrLinkUnknown      = &Error{Code: CodeLinkUnknown, Message: "no link in progress with that id"}
	ErrLinkRejected     = &Error{Code: CodeLinkRejected, Message: "the check code was rejected on the new device; nothing was linked"}
	ErrRelayRefused     = &Error{Code: CodeRelayRefused, Message: "the relay refused the request"}
	ErrOffline          = &Error{Code: CodeOffline, Message: "not connected to the relay"}
	ErrTooLong          = &Error{Code: CodeTooLong, Message: "the message is too long"}
	ErrStorage          = &Error{Code: CodeStorage, Message: "storage failed"}
	ErrTooManyDevices   = &Error{Code: CodeTooManyDevices, Message: "the account has the maximum number of devices"}
	ErrUnknownDevice    = &Error{Code: CodeUnknownDevice, Message: "no such device in the account"}
	ErrCannotRevokeSelf = &Error{Code: CodeCannotRevokeSelf, Message: "the primary cannot revoke itself"}
)

// code returns the error code of err, or "internal".
func code(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return CodeInternal
}
