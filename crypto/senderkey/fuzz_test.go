package senderkey

import (
	"bytes"
	"path/filepath"
	"testing"
)

func vectorFiles(f *testing.F) []*vector {
	files, _ := filepath.Glob("testdata/*.json")
	var vs []*vector
	for _, file := range files {
		vs = append(vs, loadVector(f, file))
	}
	return vs
}

// FuzzDecrypt feeds arbitrary messages to a fixed receiver (bob1 reading
// alice1 in good_group_3x2): failures leave it unchanged, and no message
// decrypts twice.
func FuzzDecrypt(f *testing.F) {
	for _, v := range vectorFiles(f) {
		for _, st := range v.Steps {
			f.Add([]byte(st.Message))
		}
	}
	v := loadVector(f, filepath.Join("testdata", "good_group_3x2.json"))
	before, err := newWorld(f, v).receivers["bob1"]["alice1"].MarshalBinary()
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		rc, err := UnmarshalReceiver(before)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := rc.Decrypt(msg); err != nil {
			after, _ := rc.MarshalBinary()
			if !bytes.Equal(before, after) {
				t.Fatalf("failed decrypt (%v) changed the receiver", err)
			}
			return
		}
		if _, err := rc.Decrypt(msg); err == nil {
			t.Fatalf("the same message decrypted twice")
		}
	})
}

// FuzzUnmarshalDistribution: no panics, and accepted bytes re-encode to
// themselves.
func FuzzUnmarshalDistribution(f *testing.F) {
	for _, v := range vectorFiles(f) {
		for _, s := range v.Senders {
			f.Add([]byte(s.Distribution))
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := UnmarshalDistribution(b)
		if err != nil {
			return
		}
		again, err := d.MarshalBinary()
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("accepted distribution does not re-encode to itself")
		}
	})
}

// FuzzUnmarshalState covers both stored states: the first byte picks the
// decoder (0: Sender, else Receiver), the rest is its input.
func FuzzUnmarshalState(f *testing.F) {
	for _, v := range vectorFiles(f) {
		w := newWorld(f, v)
		for _, s := range v.Senders {
			f.Add(append([]byte{0}, s.State...))
		}
		for _, rs := range w.receivers {
			for _, rc := range rs {
				b, _ := rc.MarshalBinary()
				f.Add(append([]byte{1}, b...))
			}
		}
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) == 0 {
			return
		}
		var again []byte
		if in[0] == 0 {
			s, err := UnmarshalSender(in[1:])
			if err != nil {
				return
			}
			again, _ = s.MarshalBinary()
		} else {
			rc, err := UnmarshalReceiver(in[1:])
			if err != nil {
				return
			}
			again, _ = rc.MarshalBinary()
		}
		if !bytes.Equal(again, in[1:]) {
			t.Fatalf("accepted state does not re-encode to itself")
		}
	})
}
