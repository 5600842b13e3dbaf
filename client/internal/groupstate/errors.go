package groupstate

import (
	"errors"
	"fmt"
)

// Errors of Parse: the form of a state is wrong. Parse wraps them with the
// detail (which handle, which admin); test with errors.Is. A state that
// breaks the wire encoding itself (short, too long a field, trailing
// bytes) is reported as "group state: " and crypto/wire's error.
var (
	ErrVersionZero      = errors.New("group state: version 0")
	ErrBadName          = errors.New("group state: the name is empty or not UTF-8")
	ErrEmpty            = errors.New("group state: no members or no admins")
	ErrBadMember        = errors.New("group state: bad member handle")
	ErrMembersUnsorted  = errors.New("group state: members not sorted and unique")
	ErrAdminNotMember   = errors.New("group state: an admin is not a member")
	ErrAdminTwice       = errors.New("group state: an admin device is listed twice")
	ErrSignerNotAdmin   = errors.New("group state: the signer is not one of its admins")
	ErrIDNotBound       = errors.New("group state: the id is not made from its creator's account key and nonce")
	ErrFloorAhead       = errors.New("group state: the chain floor is above the version")
	ErrLeaveRequestSize = errors.New("leave request: wrong body size")
)

// Errors of Verify: the state is well formed but does not carry the
// authority it needs.
var (
	// ErrNotAuthority means no admin of the authority signed the state.
	ErrNotAuthority = errors.New("group state: signed by a device that is not an admin of the authority")
	// ErrBadSignature means the signer's key does not verify the state.
	ErrBadSignature = errors.New("group state: bad signature")
	// ErrNotCreator means a state of a group seen first is not signed by
	// a device of the account its id is bound to (VerifyFirst).
	ErrNotCreator = errors.New("group state: a group seen first is not signed by its creator's account")
	// ErrLegacy means a state of format 1, whose id is bound to no
	// creator, came to be accepted (VerifyFirst): no such state is.
	ErrLegacy = errors.New("group state: format 1, whose id is not bound to its creator, is no longer accepted")
)

// detailError is a sentinel with a detail whose text reads as one
// sentence ("group state: admin bob is not a member"): the sentinel is for
// errors.Is, the text for people.
type detailError struct {
	sentinel error
	text     string
}

func (e *detailError) Error() string { return e.text }
func (e *detailError) Unwrap() error { return e.sentinel }

func detail(sentinel error, format string, args ...any) error {
	return &detailError{sentinel: sentinel, text: fmt.Sprintf(format, args...)}
}
