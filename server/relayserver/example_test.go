package relayserver_test

import (
	"context"
	"log"
	"net/http"
	"time"

	"github.com/parley-im/parley/server/relayserver"
	"github.com/parley-im/parley/server/store"
)

// A relay on an embedded store, mounted under /v1/, with metrics on a
// separate, private listener and a graceful stop.
func Example() {
	st, err := store.Open("data")
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close()
	r, err := relayserver.New(st, relayserver.Config{Origin: "https://parley.example"})
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/v1/", r.Handler())
	go http.ListenAndServe("127.0.0.1:9090", r.Metrics())
	srv := &http.Server{Addr: "127.0.0.1:8080", Handler: mux}
	go srv.ListenAndServe()

	// On SIGTERM: stop accepting, then close the sockets with GoingAway
	// and flush, then close the store (deferred above).
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	srv.Shutdown(ctx)
	r.Close(ctx)
}
