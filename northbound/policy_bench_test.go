package northbound_test

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nimbus-sdn/nimbus/internal/etcdtest"
	"github.com/nimbus-sdn/nimbus/northbound"
)

// TestPortCreatePolicyCost measures what the policy checks cost a port
// create: 16 clients of one non-admin project create ports through one
// replica on a real etcd, with the checks on and with them bypassed
// (northbound.SetPolicyBypass: the same binary, requests and answers),
// in interleaved rounds (on/off, then off/on, ...). It logs each round
// and the medians of rate and p99 and their ratio; it asserts nothing
// about speed. Run it with
//
//	NIMBUS_POLICY_BENCH=1 go test -count=1 -run TestPortCreatePolicyCost -v ./northbound/
//
// (NIMBUS_POLICY_BENCH_ROUNDS, default 6, and NIMBUS_POLICY_BENCH_PORTS,
// ports per phase, default 800). NIMBUS_POLICY_BENCH_AA=1 is the control:
// both series run with the checks on, so their ratio shows the
// benchmark's own spread.
func TestPortCreatePolicyCost(t *testing.T) {
	if os.Getenv("NIMBUS_POLICY_BENCH") != "1" {
		t.Skip("set NIMBUS_POLICY_BENCH=1 to run the policy cost benchmark")
	}
	rounds, perPhase := envInt("NIMBUS_POLICY_BENCH_ROUNDS", 6), envInt("NIMBUS_POLICY_BENCH_PORTS", 800)
	aa := os.Getenv("NIMBUS_POLICY_BENCH_AA") == "1"
	c := etcdtest.Start(t, 1)
	a := replicas(t, c, 1, northbound.Config{})[0]
	t.Cleanup(func() { northbound.SetPolicyBypass(false) })
	tn := a.tenant("pbench")
	net := str(tn.create(t, "/v2.0/networks", "network", map[string]any{"name": "n"}), "id")
	tn.create(t, "/v2.0/subnets", "subnet", map[string]any{"network_id": net, "cidr": "10.0.0.0/16"})
	a.do("PUT", "/v2.0/quotas/pbench", map[string]any{"quota": map[string]any{"port": -1}}).must(t, 200)
	body := map[string]any{"port": map[string]any{"network_id": net}}

	phase := func(bypass bool) (rate, p99 float64) {
		northbound.SetPolicyBypass(bypass)
		defer northbound.SetPolicyBypass(false)
		const workers = 16
		lat := make([]time.Duration, perPhase)
		var next atomic.Int64
		var wg sync.WaitGroup
		var failed atomic.Value
		start := time.Now()
		for range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					i := int(next.Add(1)) - 1
					if i >= perPhase {
						return
					}
					t0 := time.Now()
					r := tn.do("POST", "/v2.0/ports", body)
					lat[i] = time.Since(t0)
					if r.code != 201 {
						failed.Store(fmt.Sprintf("%d %s", r.code, r.raw))
						return
					}
				}
			}()
		}
		wg.Wait()
		el := time.Since(start)
		if f := failed.Load(); f != nil {
			t.Fatalf("port create failed: %v", f)
		}
		sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
		return float64(perPhase) / el.Seconds(), float64(lat[perPhase*99/100].Microseconds()) / 1000
	}
	phase(false) // warm up
	var onRate, offRate, onP99, offP99 []float64
	for r := range rounds {
		order := []bool{false, true}
		if r%2 == 1 {
			order = []bool{true, false}
		}
		for _, bypass := range order {
			rate, p99 := phase(bypass && !aa)
			if bypass {
				offRate, offP99 = append(offRate, rate), append(offP99, p99)
			} else {
				onRate, onP99 = append(onRate, rate), append(onP99, p99)
			}
			t.Logf("round %d policy=%v: %.0f ports/s, p99 %.1f ms", r, !bypass || aa, rate, p99)
		}
	}
	mOn, mOff := median(onRate), median(offRate)
	if aa {
		t.Logf("A/A control (checks on in both series): rate A/B %.3f, p99 A/B %.3f", mOn/mOff, median(onP99)/median(offP99))
	}
	t.Logf("median: policy on %.0f ports/s (p99 %.1f ms), bypassed %.0f ports/s (p99 %.1f ms); rate on/off %.3f, p99 on/off %.3f",
		mOn, median(onP99), mOff, median(offP99), mOn/mOff, median(onP99)/median(offP99))
}

func envInt(k string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(k)); err == nil && n > 0 {
		return n
	}
	return def
}

func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
