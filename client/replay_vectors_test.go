package client

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/parley-im/parley/crypto/identity"
	"github.com/parley-im/parley/crypto/wire"
)

// The vectors in testdata/records are the stored records that bound
// session starts and resends (PROTOCOL.md §15: the session-start record,
// the prekey state, the recipients record, the outbox record for one
// device), good and bad, for any other implementation of the engine's
// storage to replay: decode "encoded" as "record"; a good_ vector decodes
// to "decoded" and encodes back to "encoded" (or to "reencoded", when the
// encoder writes a newer version); a fail_ vector stops with "error". They
// are written by `go test ./client -run TestSessionRecordVectors
// -update-records`.
var updateRecords = flag.Bool("update-records", false, "rewrite testdata/records vectors")

const recordVectorsDir = "testdata/records"

type recordVector struct {
	Description string         `json:"description"`
	Record      string         `json:"record"`
	Encoded     string         `json:"encoded"`
	Decoded     map[string]any `json:"decoded,omitempty"`
	Reencoded   string         `json:"reencoded,omitempty"`
	Error       string         `json:"error,omitempty"`
}

var recordVectorErrors = map[string]error{
	"short":        wire.ErrShort,
	"trailing":     wire.ErrTrailing,
	"version":      wire.ErrVersion,
	"too_large":    wire.ErrTooLarge,
	"inconsistent": errPrekeyState,
}

func refsJSON(ds []deviceRef) []any {
	out := []any{}
	for _, d := range ds {
		out = append(out, map[string]any{"handle": d.Handle, "device": hex.EncodeToString(d.Device[:])})
	}
	return out
}

// decodeRecord decodes b as kind and returns what it holds (as the
// vectors write it) and its encoding by this implementation.
func decodeRecord(kind string, b []byte) (map[string]any, []byte, error) {
	switch kind {
	case "initial_seen":
		at, err := unmarshalInitialSeen(b)
		if err != nil {
			return nil, nil, err
		}
		return map[string]any{"accepted_unix_ms": at.UnixMilli()}, marshalInitialSeen(at), nil
	case "prekey_state":
		p, err := unmarshalPrekeyState(b)
		if err != nil {
			return nil, nil, err
		}
		pending := []any{}
		for _, k := range p.Pending {
			pending = append(pending, k)
		}
		return map[string]any{
			"next_one_time": p.NextOneTime, "next_kem": p.NextKEM, "signed_prekey_id": p.SignedID,
			"published": p.Published, "pending": pending, "last_resort_kem_id": p.LastResortID,
			"rotated_unix_ms": p.RotatedAt, "previous_signed_prekey_id": p.PrevSignedID,
			"previous_last_resort_kem_id": p.PrevLastResortID,
		}, p.marshal(), nil
	case "sentto":
		ds, err := unmarshalSentTo(b)
		if err != nil {
			return nil, nil, err
		}
		return map[string]any{"devices": refsJSON(ds)}, marshalSentTo(ds), nil
	case "outbox":
		o, err := unmarshalOutbox(b)
		if err != nil {
			return nil, nil, err
		}
		sealed := []any{}
		for _, s := range o.Sealed {
			sealed = append(sealed, map[string]any{"handle": s.Handle, "device": hex.EncodeToString(s.Device[:]), "ciphertext": hex.EncodeToString(s.Payload)})
		}
		d := map[string]any{"payload": hex.EncodeToString(o.Payload), "to": o.To, "sealed": sealed}
		if o.Only != nil {
			d["only"] = refsJSON([]deviceRef{*o.Only})[0]
		}
		return d, o.marshal(), nil
	}
	return nil, nil, errors.New("unknown record kind " + kind)
}

func generateRecordVectors(t *testing.T) map[string]recordVector {
	v := map[string]recordVector{}
	good := func(name, desc, kind string, enc []byte) {
		d, re, err := decodeRecord(kind, enc)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		vec := recordVector{Description: desc, Record: kind, Encoded: hex.EncodeToString(enc), Decoded: d}
		if !bytes.Equal(re, enc) {
			vec.Reencoded = hex.EncodeToString(re)
		}
		v[name] = vec
	}
	fail := func(name, desc, kind string, enc []byte) {
		_, _, err := decodeRecord(kind, enc)
		errName := ""
		for _, n := range sortedKeys(recordVectorErrors) {
			if errors.Is(err, recordVectorErrors[n]) {
				errName = n
				break
			}
		}
		if errName == "" {
			t.Fatalf("%s: %v has no vector name", name, err)
		}
		v[name] = recordVector{Description: desc, Record: kind, Encoded: hex.EncodeToString(enc), Error: errName}
	}
	seen := marshalInitialSeen(time.UnixMilli(1_765_000_000_000))
	good("good_initial_seen", "A session start accepted at 1,765,000,000,000 ms.", "initial_seen", seen)
	fail("fail_initial_seen_trailing", "A byte after the time.", "initial_seen", append(bytes.Clone(seen), 0))
	fail("fail_initial_seen_version", "Version 2.", "initial_seen", append([]byte{2}, seen[1:]...))

	st := &prekeyState{NextOneTime: 51, NextKEM: 23, SignedID: 2, Pending: []string{"otk/00000033"},
		LastResortID: 22, RotatedAt: 1_765_000_000_000, PrevSignedID: 1, PrevLastResortID: 1}
	good("good_prekey_state_rotated", "Rotated once: signed prekey 2 and last-resort KEM prekey 22, the previous 1 and 1 in their grace period.", "prekey_state", st.marshal())
	fresh := &prekeyState{NextOneTime: 51, NextKEM: 22, SignedID: 1, Published: true, LastResortID: 1, RotatedAt: 1_765_000_000_000}
	good("good_prekey_state_fresh", "A new device's state, published, never rotated.", "prekey_state", fresh.marshal())
	v1 := bytes.Clone(fresh.marshal()[:1+4+4+4+1+4])
	v1[0] = 1
	good("good_prekey_state_version1", "Version 1 (no rotation fields): last-resort KEM prekey 1, rotation time unknown (0, so it rotates at once); written back as version 2.", "prekey_state", v1)
	bad := *st
	bad.PrevLastResortID = 0
	fail("fail_prekey_state_half_previous", "A previous signed prekey without its previous last-resort KEM prekey.", "prekey_state", bad.marshal())
	bad = *st
	bad.PrevSignedID = bad.SignedID
	fail("fail_prekey_state_previous_is_current", "The previous signed prekey id equals the current one.", "prekey_state", bad.marshal())
	bad = *st
	bad.LastResortID = 0
	fail("fail_prekey_state_no_last_resort", "Last-resort KEM prekey id 0.", "prekey_state", bad.marshal())
	fail("fail_prekey_state_version3", "Version 3.", "prekey_state", append([]byte{3}, st.marshal()[1:]...))

	refs := []deviceRef{{"alice", identity.DeviceID{0xa1}}, {"bob", identity.DeviceID{0xb1}}, {"bob", identity.DeviceID{0xb2}}}
	good("good_sentto", "A message that went to one device of the sender's account and two of the recipient's.", "sentto", marshalSentTo(refs))
	many := make([]deviceRef, maxOutboxTargets+1)
	for i := range many {
		many[i] = deviceRef{"bob", identity.DeviceID{byte(i)}}
	}
	fail("fail_sentto_too_many", "65 devices, one more than a send addresses.", "sentto", marshalSentTo(many))
	fail("fail_sentto_short", "A device id cut short.", "sentto", marshalSentTo(refs)[:20])

	only := &outboxRecord{Payload: []byte{1, 1}, To: "bob", Sealed: []sealedOut{{Handle: "bob", Device: identity.DeviceID{0xb1}, Payload: []byte{2, 9}}},
		Only: &deviceRef{"bob", identity.DeviceID{0xb1}}}
	good("good_outbox_only", "A resend for Bob's device b1 alone, its ciphertext made.", "outbox", only.marshal())
	plain := *only
	plain.Only = nil
	good("good_outbox_all", "An ordinary outbox record (version 1): for every device.", "outbox", plain.marshal())
	enc := only.marshal()
	fail("fail_outbox_only_short", "Version 2 without its device.", "outbox", enc[:len(enc)-identity.DeviceIDSize])
	fail("fail_outbox_version3", "Version 3.", "outbox", append([]byte{3}, enc[1:]...))
	return v
}

func sortedKeys(m map[string]error) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func TestSessionRecordVectors(t *testing.T) {
	if *updateRecords {
		if err := os.MkdirAll(recordVectorsDir, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, v := range generateRecordVectors(t) {
			b, err := json.MarshalIndent(v, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(recordVectorsDir, name+".json"), append(b, '\n'), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	paths, err := filepath.Glob(filepath.Join(recordVectorsDir, "*.json"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no vectors in %s (%v); generate them with -update-records", recordVectorsDir, err)
	}
	for _, p := range paths {
		name := strings.TrimSuffix(filepath.Base(p), ".json")
		t.Run(name, func(t *testing.T) {
			raw, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			var v recordVector
			if err := json.Unmarshal(raw, &v); err != nil {
				t.Fatal(err)
			}
			enc, err := hex.DecodeString(v.Encoded)
			if err != nil {
				t.Fatal(err)
			}
			d, re, err := decodeRecord(v.Record, enc)
			switch {
			case strings.HasPrefix(name, "good_"):
				if err != nil {
					t.Fatalf("good vector failed: %v", err)
				}
				want := v.Encoded
				if v.Reencoded != "" {
					want = v.Reencoded
				}
				if got := hex.EncodeToString(re); got != want {
					t.Fatalf("re-encodes as %s, want %s", got, want)
				}
				gotJSON, _ := json.Marshal(d)
				var norm map[string]any
				json.Unmarshal(gotJSON, &norm)
				a, _ := json.Marshal(norm)
				b, _ := json.Marshal(v.Decoded)
				if !bytes.Equal(a, b) {
					t.Fatalf("decodes to %s, want %s", a, b)
				}
			case strings.HasPrefix(name, "fail_"):
				want, ok := recordVectorErrors[v.Error]
				if !ok {
					t.Fatalf("unknown error name %q", v.Error)
				}
				if !errors.Is(err, want) {
					t.Fatalf("got %v, want %s", err, v.Error)
				}
			default:
				t.Fatal("vector names start with good_ or fail_")
			}
		})
	}
}
