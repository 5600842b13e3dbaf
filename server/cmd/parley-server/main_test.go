package main

import (
	"errors"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/parley-im/parley/relay"
	"github.com/parley-im/parley/server/relayserver"
	"github.com/parley-im/parley/server/store"
)

func TestParseConfig(t *testing.T) {
	env := map[string]string{}
	getenv := func(k string) string { return env[k] }

	c, err := parseConfig(nil, getenv)
	if err != nil || c.addr != "127.0.0.1:8080" || c.data != "data" || len(c.frameAncestors) != 0 {
		t.Fatalf("defaults: %+v %v", c, err)
	}
	env["PARLEY_ADDR"], env["PARLEY_DATA"] = "127.0.0.1:9000", "var/dev"
	env["PARLEY_FRAME_ANCESTORS"] = "https://a.example https://b.example"
	c, _ = parseConfig(nil, getenv)
	if c.addr != "127.0.0.1:9000" || c.data != "var/dev" || !slices.Equal(c.frameAncestors, []string{"https://a.example", "https://b.example"}) {
		t.Fatalf("environment: %+v", c)
	}
	c, _ = parseConfig([]string{"-addr", "127.0.0.1:9100", "-data", "/tmp/x"}, getenv)
	if c.addr != "127.0.0.1:9100" || c.data != "/tmp/x" {
		t.Fatalf("flags must win over environment: %+v", c)
	}
	if _, err := parseConfig([]string{"stray"}, getenv); err == nil {
		t.Fatal("stray argument accepted")
	}
}

func TestParseConfigRelayLimits(t *testing.T) {
	env := map[string]string{}
	getenv := func(k string) string { return env[k] }
	c, err := parseConfig(nil, getenv)
	if err != nil || c.attestationAge != relay.DefaultAttestationAge || c.ttl != relayserver.DefaultTTL ||
		c.blobQuota != relayserver.DefaultBlobQuota || c.mailboxLimit != relayserver.DefaultMailboxLimit || c.maxConn != relayserver.DefaultMaxConnections ||
		c.prekeyFetches != relayserver.DefaultPrekeyFetches {
		t.Fatalf("defaults: %+v %v", c, err)
	}
	env["PARLEY_ATTESTATION_AGE"], env["PARLEY_BLOB_QUOTA"], env["PARLEY_TTL"] = "168h", "1048576", "24h"
	env["PARLEY_MAILBOX_LIMIT"], env["PARLEY_MAX_CONNECTIONS"] = "500", "2000"
	c, err = parseConfig(nil, getenv)
	if err != nil || c.attestationAge != 168*time.Hour || c.blobQuota != 1<<20 || c.ttl != 24*time.Hour || c.mailboxLimit != 500 || c.maxConn != 2000 {
		t.Fatalf("environment: %+v %v", c, err)
	}
	env["PARLEY_PREKEY_FETCHES"] = "64"
	if c, err := parseConfig(nil, getenv); err != nil || c.prekeyFetches != 64 {
		t.Fatalf("PARLEY_PREKEY_FETCHES: %+v %v", c, err)
	}
	c, err = parseConfig([]string{"-attestation-age", "72h", "-blob-quota", "2048", "-mailbox-limit", "7", "-prekey-fetches", "1000"}, getenv)
	if err != nil || c.attestationAge != 72*time.Hour || c.blobQuota != 2048 || c.mailboxLimit != 7 || c.prekeyFetches != 1000 {
		t.Fatalf("flags must win over environment: %+v %v", c, err)
	}
	for _, bad := range [][]string{
		{"-attestation-age", "0s"}, {"-attestation-age", "soon"}, {"-ttl", "8760h"}, {"-ttl", "-1h"},
		{"-blob-quota", "0"}, {"-blob-quota", "1GiB"}, {"-mailbox-limit", "-3"}, {"-max-connections", "9999999999"}, {"-prekey-fetches", "0"},
	} {
		if _, err := parseConfig(bad, getenv); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}

// TestCompactCommand: `parley-server compact -data DIR` rewrites a stopped
// server's database, and refuses one a running server holds.
func TestCompactCommand(t *testing.T) {
	dir := t.TempDir()
	st, err := store.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	if err := run([]string{"compact", "-data", dir}, log); !errors.Is(err, store.ErrLocked) {
		t.Fatalf("compact while the database is open: %v, want ErrLocked", err)
	}
	st.Close()
	if err := run([]string{"compact", "-data", dir}, log); err != nil {
		t.Fatalf("compact: %v", err)
	}
	st, err = store.Open(dir)
	if err != nil {
		t.Fatalf("open after compact: %v", err)
	}
	st.Close()
	if err := run([]string{"compact", "-data", dir, "stray"}, log); err == nil {
		t.Fatal("stray argument accepted")
	}
}
