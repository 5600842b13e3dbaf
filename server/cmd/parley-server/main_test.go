package main

import (
	"errors"
	"log/slog"
	"slices"
	"strconv"
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
		c.blobQuota != relayserver.DefaultBlobQuota || c.mailboxLimit != relayserver.DefaultMailboxLimit || c.maxConnIP != relayserver.DefaultMaxConnectionsPerIP ||
		c.bodyTimeout != relayserver.DefaultBodyTimeout || c.bodyMinRate != relayserver.DefaultBodyMinRate ||
		c.inFlight != relayserver.DefaultBytesInFlight || c.socketInFlight != relayserver.DefaultSocketBytesInFlight ||
		c.drainTimeout != relayserver.DefaultDrainTimeout ||
		c.prekeyFetches != relayserver.DefaultPrekeyFetches {
		t.Fatalf("defaults: %+v %v", c, err)
	}
	env["PARLEY_ATTESTATION_AGE"], env["PARLEY_BLOB_QUOTA"], env["PARLEY_TTL"] = "168h", "1048576", "24h"
	env["PARLEY_MAILBOX_LIMIT"], env["PARLEY_MAX_CONNECTIONS"] = "500", "2000"
	env["PARLEY_MAX_CONNECTIONS_PER_IP"], env["PARLEY_BODY_TIMEOUT"], env["PARLEY_BODY_MIN_RATE"] = "30", "3s", "4096"
	env["PARLEY_BYTES_IN_FLIGHT"], env["PARLEY_SOCKET_BYTES_IN_FLIGHT"], env["PARLEY_DRAIN_TIMEOUT"] = "8388608", "524288", "5s"
	c, err = parseConfig(nil, getenv)
	if err != nil || c.attestationAge != 168*time.Hour || c.blobQuota != 1<<20 || c.ttl != 24*time.Hour || c.mailboxLimit != 500 || c.maxConn != 2000 ||
		c.maxConnIP != 30 || c.bodyTimeout != 3*time.Second || c.bodyMinRate != 4096 ||
		c.inFlight != 8<<20 || c.socketInFlight != 512<<10 || c.drainTimeout != 5*time.Second {
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
		{"-max-connections-per-ip", "0"}, {"-body-timeout", "0s"}, {"-body-min-rate", "fast"},
		{"-bytes-in-flight", "0"}, {"-socket-bytes-in-flight", "-1"}, {"-drain-timeout", "never"},
	} {
		if _, err := parseConfig(bad, getenv); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}

// TestMaxConnectionsBelowDescriptorLimit: every connection is a descriptor,
// so a default cap above the process's limit (50,000 against 20,000) let a
// flood reach `accept4: too many open files` before any cap. The default
// leaves fdReserve descriptors (a quarter of a small limit) for the rest,
// and a cap above that is refused at start.
func TestMaxConnectionsBelowDescriptorLimit(t *testing.T) {
	limit := descriptorLimit()
	if limit == 0 {
		t.Fatal("cannot read the descriptor limit")
	}
	getenv := func(string) string { return "" }
	c, err := parseConfig(nil, getenv)
	if err != nil || int64(c.maxConn) > limit-min(fdReserve, limit/4) || c.maxConn > relayserver.DefaultMaxConnections {
		t.Fatalf("default -max-connections %d with a descriptor limit of %d (%v), want at most %d", c.maxConn, limit, err, limit-min(fdReserve, limit/4))
	}
	if _, err := parseConfig([]string{"-max-connections", strconv.FormatInt(limit, 10)}, getenv); err == nil {
		t.Fatalf("-max-connections %d (the descriptor limit) accepted", limit)
	}
}

func TestConnectionRoomUnderSmallLimits(t *testing.T) {
	for _, c := range []struct{ limit, want int64 }{{20000, 18976}, {1024, 768}, {4, 3}, {1, 1}} {
		if got := connectionRoom(c.limit); got != c.want {
			t.Errorf("connectionRoom(%d) = %d, want %d", c.limit, got, c.want)
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
