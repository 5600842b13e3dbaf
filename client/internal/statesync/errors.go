package statesync

import (
	"errors"
	"fmt"
)

// Errors of a batch that decodes but is not a part of a whole.
var ErrParts = errors.New("sync batch: part out of range")

// partsError names the part; it is ErrParts.
type partsError struct{ part, parts uint16 }

func (e partsError) Error() string { return fmt.Sprintf("sync batch: part %d of %d", e.part, e.parts) }
func (partsError) Unwrap() error   { return ErrParts }

// Errors of Schema.Check: which rule of its namespace an entry broke. An
// entry that fails is skipped, never fatal: it may come from a newer
// version that knows namespaces this one does not.
var (
	ErrContactKey   = errors.New("contact key is not a handle")
	ErrContactName  = errors.New("contact name is not 0 to 64 bytes of UTF-8")
	ErrReadMarker   = errors.New("malformed read marker")
	ErrChatFlag     = errors.New("malformed chat flag")
	ErrSettingName  = errors.New("malformed setting name")
	ErrSettingValue = errors.New("setting value is not UTF-8 within the limit")
	ErrNamespace    = errors.New("unknown state key namespace")
)
