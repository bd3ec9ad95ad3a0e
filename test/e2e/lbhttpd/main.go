// Command lbhttpd is the light HTTP back-end of the load-balancer
// benchmark (test/e2e TestLoadBalancerBench): it answers every request
// with its name and a newline, like the lab's busybox httpd serving
// index.html, but from one process (Go's net/http: a goroutine per
// connection) instead of a fork per connection. The benchmark runs it
// beside busybox on every member, for both the VIP and HAProxy, so the
// balancers can be compared without the back-end's fork dominating both
// (docs/benchmarks.md, "2026-12-03: load balancer").
package main

import (
	"flag"
	"log"
	"net/http"
	"strconv"
)

func main() {
	listen := flag.String("listen", ":8082", "address to listen on")
	name := flag.String("name", "m", "the name every answer carries")
	flag.Parse()
	body := []byte(*name + "\n")
	length := strconv.Itoa(len(body))
	http.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.Header().Set("Content-Length", length)
		_, _ = w.Write(body)
	})
	log.Fatal(http.ListenAndServe(*listen, nil))
}
