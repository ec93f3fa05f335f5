// A registry with the OCI 1.1 referrers API, for tests: go-containerregistry's in-memory
// registry (pkg/registry) with WithReferrersSupport, on 127.0.0.1. Neither the Debian
// docker-registry (distribution 2.8.2) nor distribution v3 has the API; zot is not in the Go
// module proxy. It lists referrers by their `subject` but answers a manifest PUT without the
// OCI-Subject header, so a client pushing into it also writes the fallback tag.
package main

import (
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	flag.Parse()
	listener, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("listening on %s\n", listener.Addr())
	s := &http.Server{
		ReadHeaderTimeout: 5 * time.Second,
		Handler:           registry.New(registry.WithReferrersSupport(true), registry.Logger(log.New(io.Discard, "", 0))),
	}
	log.Fatal(s.Serve(listener))
}
