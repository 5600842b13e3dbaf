package main

import (
	"slices"
	"testing"
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
