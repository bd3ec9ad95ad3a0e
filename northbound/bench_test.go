package northbound_test

import (
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nimbus-sdn/nimbus/internal/etcdtest"
	"github.com/nimbus-sdn/nimbus/northbound"
)

// BenchmarkPortCreate measures port creation through 1 and 3 replicas
// (separate store clients and HTTP servers) on one real etcd, with 16
// concurrent clients spread over the replicas, each port allocating an IP
// from one shared /16. It reports ports/s and the p50/p99 latency.
//
//	go test -run '^$' -bench PortCreate -benchtime 2000x ./northbound/
func BenchmarkPortCreate(b *testing.B) {
	for _, n := range []int{1, 3} {
		b.Run(map[int]string{1: "replicas=1", 3: "replicas=3"}[n], func(b *testing.B) {
			c := etcdtest.Start(b, 1)
			rs := replicas(b, c, n, northbound.Config{})
			net := str(rs[0].network(b, "p1", "n"), "id")
			rs[0].subnet(b, "p1", net, "10.0.0.0/16")
			rs[0].do("PUT", "/v2.0/quotas/p1", map[string]any{"quota": map[string]any{"port": -1}}).must(b, 200)
			const workers = 16
			lat := make([]time.Duration, b.N)
			var next atomic.Int64
			var wg sync.WaitGroup
			body := map[string]any{"port": map[string]any{"network_id": net, "project_id": "p1"}}
			b.ResetTimer()
			start := time.Now()
			for w := 0; w < workers; w++ {
				wg.Add(1)
				go func(w int) {
					defer wg.Done()
					for {
						i := int(next.Add(1)) - 1
						if i >= b.N {
							return
						}
						t0 := time.Now()
						r := rs[i%n].do("POST", "/v2.0/ports", body)
						lat[i] = time.Since(t0)
						if r.code != 201 {
							b.Errorf("create: %d %s", r.code, r.raw)
							return
						}
					}
				}(w)
			}
			wg.Wait()
			el := time.Since(start)
			b.StopTimer()
			sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
			b.ReportMetric(float64(b.N)/el.Seconds(), "ports/s")
			b.ReportMetric(float64(lat[b.N/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(lat[(b.N*99)/100].Microseconds())/1000, "p99-ms")
		})
	}
}
