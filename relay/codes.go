package relay

import "fmt"

// Code says why the relay refused something. The same codes appear in
// Error frames, in HTTP error bodies ({"code": "...", "message": "..."})
// and, offset by CloseBase, as WebSocket close codes.
type Code uint16

const (
	CodeOK             Code = 0
	CodeBadRequest     Code = 1  // malformed frame or body
	CodeTooLarge       Code = 2  // over a size limit
	CodeUnexpected     Code = 3  // frame not allowed in this state (e.g. send before auth)
	CodeAuthFailed     Code = 4  // challenge answer wrong, stale or replayed
	CodeRevoked        Code = 5  // the device is not in its account's current list
	CodeUnknownAccount Code = 6  // no such handle
	CodeStaleDevices   Code = 7  // send's device set differs from the lists (see Stale)
	CodeMailboxFull    Code = 8  // a recipient's mailbox is at its cap
	CodeRateLimited    Code = 9  // slow down
	CodeHandleTaken    Code = 10 // register: first come, first served
	CodeBadHandle      Code = 11 // handle breaks the rules
	CodeBadDeviceList  Code = 12 // list signature or contents invalid
	CodeStaleVersion   Code = 13 // list version not higher than the stored one
	CodeNoPrekeys      Code = 14 // device has published no signed prekey
	CodePrekeyLimit    Code = 15 // upload would exceed the stock cap
	CodeNotFound       Code = 16 // link, blob or device unknown or expired
	CodeAlreadyUsed    Code = 17 // link slot or blob already filled
	CodeConflict       Code = 18 // concurrent list update, retry
	CodeBusy           Code = 19 // connection cap reached or shutting down
	CodeInternal       Code = 20 // the relay failed; nothing was stored
	CodeUnknownDevice  Code = 21 // fetch for a device not in the list
	CodeTooManyDevices Code = 22 // device list exceeds the relay's cap
	CodeQuota          Code = 23 // the account's blob storage quota is used up
	CodeKeyTaken       Code = 24 // register: the account key is registered under another handle
)

// CloseBase offsets codes into the WebSocket application close range.
const CloseBase = 4000

var codeNames = map[Code]string{
	CodeOK:             "ok",
	CodeBadRequest:     "bad_request",
	CodeTooLarge:       "too_large",
	CodeUnexpected:     "unexpected_frame",
	CodeAuthFailed:     "auth_failed",
	CodeRevoked:        "device_revoked",
	CodeUnknownAccount: "unknown_account",
	CodeStaleDevices:   "stale_devices",
	CodeMailboxFull:    "mailbox_full",
	CodeRateLimited:    "rate_limited",
	CodeHandleTaken:    "handle_taken",
	CodeBadHandle:      "bad_handle",
	CodeBadDeviceList:  "bad_device_list",
	CodeStaleVersion:   "stale_version",
	CodeNoPrekeys:      "no_prekeys",
	CodePrekeyLimit:    "prekey_limit",
	CodeNotFound:       "not_found",
	CodeAlreadyUsed:    "already_used",
	CodeConflict:       "conflict",
	CodeBusy:           "busy",
	CodeInternal:       "internal",
	CodeUnknownDevice:  "unknown_device",
	CodeTooManyDevices: "too_many_devices",
	CodeQuota:          "quota_exceeded",
	CodeKeyTaken:       "key_taken",
}

// String is the code's stable name, used in HTTP bodies and metrics.
func (c Code) String() string {
	if s, ok := codeNames[c]; ok {
		return s
	}
	return fmt.Sprintf("code_%d", uint16(c))
}

// ParseCode maps a name back to its code.
func ParseCode(s string) (Code, bool) {
	for c, n := range codeNames {
		if n == s {
			return c, true
		}
	}
	return 0, false
}

// Codes lists every defined code, for documentation and metrics.
func Codes() []Code {
	out := make([]Code, 0, len(codeNames))
	for c := Code(0); int(c) < 64; c++ {
		if _, ok := codeNames[c]; ok {
			out = append(out, c)
		}
	}
	return out
}

// RelayError is a refusal as a Go error: the engine gets one from the
// client side of every request.
type RelayError struct {
	Code    Code
	Message string
}

func (e *RelayError) Error() string { return fmt.Sprintf("relay: %s: %s", e.Code, e.Message) }
