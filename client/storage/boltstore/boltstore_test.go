//go:build !js

package boltstore

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/parley-im/parley/client/storage"
	"github.com/parley-im/parley/client/storage/storagetest"
)

func TestConformance(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "c.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := storagetest.Run(context.Background(), s); err != nil {
		t.Fatal(err)
	}
}

// TestReopen: what a Commit wrote is there after the file is reopened.
func TestReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "r.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	var b storage.Batch
	b.Put("sessions", "bob/1", []byte("state"))
	if err := s.Commit(context.Background(), &b); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if v, err := s.Get(context.Background(), "sessions", "bob/1"); err != nil || string(v) != "state" {
		t.Fatalf("after reopen: %q %v", v, err)
	}
}
