// A registry that serves the OCI 1.1 referrers API, for portcullis's tests (Debian's
// docker-registry and the released distribution 3 do not): go-containerregistry's registry
// handler, in memory, with its referrers endpoint switched on. It prints the address it
// listens on, then serves until killed. Built by scripts/tools.sh (referrers-registry).
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
)

func main() {
	address := flag.String("address", "127.0.0.1:0", "address to listen on (loopback)")
	flag.Parse()
	listener, err := net.Listen("tcp", *address)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Fprintln(os.Stdout, listener.Addr().String())
	server := &http.Server{
		Handler:           registry.New(registry.WithReferrersSupport(true)),
		ReadHeaderTimeout: 10 * time.Second,
	}
	log.Fatal(server.Serve(listener))
}
