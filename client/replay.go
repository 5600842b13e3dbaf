package client

import (
	"encoding/hex"
	"fmt"
	"time"

	"github.com/parley-im/parley/crypto/identity"
	"github.com/parley-im/parley/crypto/wire"
)

// The replay record of session starts (PROTOCOL.md 4.2 step 1, §15).
//
// A session this device accepted as responder is matched to later copies
// of its initial message by the initiator's ephemeral key, but only while
// the session is live: a device keeps maxSessionsPerDevice sessions per
// peer device, so newer ones push it out. Without a record, a relay that
// kept the initial message could deliver it again after that, and the
// session would start afresh from the same keys (a start that names no
// one-time prekey consumes nothing) and become the active one: a state of
// it that leaked before the peers healed would read new messages.
//
// So every accepted start leaves a record keyed by the signed prekey it
// named, the initiator device and the ephemeral key, written in the batch
// that stores the session; a start found there is refused. The records
// of a signed prekey go when it is deleted (prekeys.go): a start naming a
// deleted signed prekey fails anyway (unknown_prekey).

// initialSeenPrefix begins the keys of the replay record in bPrekeys.
const initialSeenPrefix = "seen/"

// initialSeenKey is the record of one accepted start:
// seen/<signed prekey id, 8 hex>/<initiator device hex>/<ephemeral hex>.
func initialSeenKey(spk uint32, dev identity.DeviceID, eph [32]byte) string {
	return fmt.Sprintf("%s%08x/%s/%s", initialSeenPrefix, spk, dev, hex.EncodeToString(eph[:]))
}

// initialSeenSPKPrefix is the prefix of every record made under one
// signed prekey.
func initialSeenSPKPrefix(spk uint32) string {
	return fmt.Sprintf("%s%08x/", initialSeenPrefix, spk)
}

// initialSeenSize is the size of a record's value: version and time.
const initialSeenSize = 1 + 8

// marshalInitialSeen is a record's value: u8 1 ‖ u64 unix ms accepted.
// The time is only for people reading a store; the key is the record.
func marshalInitialSeen(at time.Time) []byte {
	w := wire.NewWriter(initialSeenSize)
	w.U8(recordVersion)
	w.U64(uint64(at.UnixMilli()))
	return w.Bytes()
}

func unmarshalInitialSeen(b []byte) (time.Time, error) {
	r := wire.NewReader(b)
	r.Version(recordVersion)
	ms := r.U64()
	if err := r.Finish(); err != nil {
		return time.Time{}, fmt.Errorf("session start record: %w", err)
	}
	return time.UnixMilli(int64(ms)), nil
}
