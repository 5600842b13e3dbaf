package statesync

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/parley-im/parley/crypto/wire"
)

// State keys: a namespace, '/', and the chat, handle or setting name.
const (
	NSContact  = "contact/"  // value: display name (UTF-8), empty = removed
	NSRead     = "read/"     // value: u64 unix ms up to which the chat is read
	NSArchived = "archived/" // value: u8 1 or 0
	NSMuted    = "muted/"    // value: u8 1 or 0
	NSSetting  = "setting/"  // value: UTF-8 text, empty = removed
)

// Entry is one entry of the state map.
type Entry struct {
	Key   string
	Clock Clock
	Value []byte
}

// Size is what en takes in a batch, which a snapshot part's budget counts.
func (en *Entry) Size() int { return 8 + len(en.Key) + ClockSize + len(en.Value) }

// Batch is the plaintext of a change (part 0 of 1) or of one snapshot
// part:
//
//	u8 version ‖ u16 part ‖ u16 parts ‖ u32 count ‖ (str key ‖ clock ‖ var value)*
type Batch struct {
	Part, Parts uint16
	Entries     []Entry
}

// Marshal encodes s.
func (s *Batch) Marshal() []byte {
	n := 16
	for i := range s.Entries {
		n += s.Entries[i].Size()
	}
	w := wire.NewWriter(n)
	w.U8(Version)
	w.U16(s.Part)
	w.U16(s.Parts)
	w.U32(uint32(len(s.Entries)))
	for _, en := range s.Entries {
		w.String(en.Key)
		en.Clock.encode(w)
		w.Var(en.Value)
	}
	return w.Bytes()
}

// ParseBatch decodes a batch. It does not check the entries against the
// Schema: the caller skips the ones that fail, one by one.
func ParseBatch(b []byte) (*Batch, error) {
	r := wire.NewReader(b)
	r.Version(Version)
	s := &Batch{Part: r.U16(), Parts: r.U16()}
	n := r.Count(MaxEntries)
	for i := 0; i < n && r.Err() == nil; i++ {
		var en Entry
		en.Key = r.String(MaxKeyLen)
		en.Clock = decodeClock(r)
		en.Value = r.Var(MaxValueLen)
		s.Entries = append(s.Entries, en)
	}
	if err := r.Finish(); err != nil {
		return nil, fmt.Errorf("sync batch: %w", err)
	}
	if s.Parts == 0 || s.Part >= s.Parts {
		return nil, partsError{s.Part, s.Parts}
	}
	return s, nil
}

// MarshalEntryRecord is how an entry is stored (its key is the record
// key): u8 version ‖ clock ‖ var value.
func MarshalEntryRecord(en *Entry) []byte {
	w := wire.NewWriter(1 + ClockSize + 4 + len(en.Value))
	w.U8(Version)
	en.Clock.encode(w)
	w.Var(en.Value)
	return w.Bytes()
}

// ParseEntryRecord decodes the stored entry at key.
func ParseEntryRecord(key string, b []byte) (*Entry, error) {
	r := wire.NewReader(b)
	r.Version(Version)
	en := &Entry{Key: key, Clock: decodeClock(r), Value: r.Var(MaxValueLen)}
	if err := r.Finish(); err != nil {
		return nil, fmt.Errorf("sync entry record: %w", err)
	}
	return en, nil
}

// Schema is the state map's table of namespaces (PROTOCOL.md §14.5) with
// the engine's rules for the names inside keys, which its setters check
// too.
type Schema struct {
	IsHandle      func(string) bool // the handle of a contact/ key
	IsChat        func(string) bool // the chat of a read/, archived/ or muted/ key
	IsSettingName func(string) bool // the name of a setting/ key
}

// Check checks a key and its value against its namespace; the error says
// which rule failed (errors.go).
func (sc Schema) Check(key string, v []byte) error {
	switch {
	case strings.HasPrefix(key, NSContact):
		if !sc.IsHandle(key[len(NSContact):]) {
			return ErrContactKey
		}
		if len(v) > MaxContactNameLen || !utf8.Valid(v) {
			return ErrContactName
		}
	case strings.HasPrefix(key, NSRead):
		if !sc.IsChat(key[len(NSRead):]) || len(v) != 8 {
			return ErrReadMarker
		}
	case strings.HasPrefix(key, NSArchived), strings.HasPrefix(key, NSMuted):
		c := key[strings.IndexByte(key, '/')+1:]
		if !sc.IsChat(c) || len(v) != 1 || v[0] > 1 {
			return ErrChatFlag
		}
	case strings.HasPrefix(key, NSSetting):
		if !sc.IsSettingName(key[len(NSSetting):]) {
			return ErrSettingName
		}
		if len(v) > MaxSettingValueLen || !utf8.Valid(v) {
			return ErrSettingValue
		}
	default:
		return ErrNamespace
	}
	return nil
}
