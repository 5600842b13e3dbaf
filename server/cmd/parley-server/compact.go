package main

import (
	"flag"
	"fmt"
	"log/slog"
	"os"

	"github.com/parley-im/parley/server/store"
)

// compact is `parley-server compact [-data DIR]`: it rewrites the stopped
// server's database so the space of delivered and expired records goes
// back to the file system (store.Compact). The server must be stopped; a
// running one holds the database's lock and compact refuses.
func compact(args []string, log *slog.Logger) error {
	fs := flag.NewFlagSet("parley-server compact", flag.ContinueOnError)
	data := fs.String("data", envOr("PARLEY_DATA", "data"), "data directory of the stopped server (env PARLEY_DATA)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("compact: unexpected arguments: %v", fs.Args())
	}
	before, after, err := store.Compact(*data)
	if err != nil {
		return err
	}
	log.Info("compacted the database", "data", *data, "bytes_before", before, "bytes_after", after)
	return nil
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
