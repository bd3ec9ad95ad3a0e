// Package metrics holds Nimbus's Prometheus metrics.
package metrics

import (
	"fmt"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/nimbus-sdn/nimbus/app/learning"
	"github.com/nimbus-sdn/nimbus/lbprobe"
	"github.com/nimbus-sdn/nimbus/ofproto"
	"github.com/nimbus-sdn/nimbus/pipeline"
	"github.com/nimbus-sdn/nimbus/reconcile"
)

// Metrics is the set of controller metrics on one registry.
type Metrics struct {
	Registry           *prometheus.Registry
	SwitchesConnected  prometheus.Gauge
	PacketIns          *prometheus.CounterVec
	FlowMods           *prometheus.CounterVec
	ReconcileDuration  prometheus.Histogram
	ReconcileErrors    prometheus.Counter
	DriftRepairs       prometheus.Counter
	ContractViolations prometheus.Counter
	MalformedClosures  prometheus.Counter
	MastershipChanges  prometheus.Counter
	SwitchesMastered   prometheus.Gauge
	// Fabric links known (discovered by LLDP, alive) and LLDP frames
	// that did not parse.
	FabricLinks   prometheus.Gauge
	MalformedLLDP prometheus.Counter

	// PacketInFlowAdds counts flows installed by packet-in handlers.
	PacketInFlowAdds prometheus.Counter

	// Mastership alarms: MASTER role requests the switch refused or that
	// failed, generation raises after a STALE refusal, resignations
	// after a takeover that kept failing, and switches this replica was
	// elected to master that have not confirmed it yet.
	RoleRequestFailures  prometheus.Counter
	RoleGenerationRaises prometheus.Counter
	MastershipResigns    prometheus.Counter
	SwitchesUnconfirmed  prometheus.Gauge
	// Embedded etcd maintenance (store.Observer).
	EtcdDefrags     *prometheus.CounterVec
	EtcdDBSizeBytes prometheus.Gauge
	// The OpenFlow listener: open connections (handshaking or not),
	// connections refused by reason, and connections closed for
	// misbehaviour by reason (see ofproto.Observer).
	OpenFlowConns   prometheus.Gauge
	OpenFlowRefused *prometheus.CounterVec
	OpenFlowDropped *prometheus.CounterVec
	// UnencodableReplies counts packet-in replies dropped because they
	// do not fit an OpenFlow message (by app and message kind).
	UnencodableReplies *prometheus.CounterVec
	// ReconcileRefused counts groups and flows the reconciler refused to
	// send because they cannot be encoded (by kind).
	ReconcileRefused *prometheus.CounterVec
	// LearningDropped counts frames the learning app did not flood back
	// because they were too large to send without a switch buffer.
	LearningDropped prometheus.CounterFunc
	// ConnPanics counts switch connections closed by a recovered panic.
	ConnPanics prometheus.CounterFunc
	// SNAT port blocks per router external IP: leased by hypervisors,
	// and free (in blocks of the default size), from the model snapshot.
	SNATBlocksLeased *prometheus.GaugeVec
	SNATBlocksFree   *prometheus.GaugeVec

	packetIns [256]prometheus.Counter
}

// New registers all metrics on a fresh registry.
func New() *Metrics {
	r := prometheus.NewRegistry()
	m := &Metrics{
		Registry:          r,
		SwitchesConnected: prometheus.NewGauge(prometheus.GaugeOpts{Name: "nimbus_switches_connected", Help: "Switches with an open OpenFlow connection."}),
		PacketIns:         prometheus.NewCounterVec(prometheus.CounterOpts{Name: "nimbus_packet_ins_total", Help: "Packet-ins received, by the app that handled them."}, []string{"app"}),
		FlowMods:          prometheus.NewCounterVec(prometheus.CounterOpts{Name: "nimbus_flow_mods_total", Help: "Flow-mods sent, by source (reconcile or packet_in) and operation."}, []string{"source", "op"}),
		ReconcileDuration: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "nimbus_reconcile_duration_seconds", Help: "Duration of reconcile passes.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16)}),
		ReconcileErrors:    prometheus.NewCounter(prometheus.CounterOpts{Name: "nimbus_reconcile_errors_total", Help: "Reconcile passes that failed."}),
		DriftRepairs:       prometheus.NewCounter(prometheus.CounterOpts{Name: "nimbus_drift_repairs_total", Help: "Flows, groups and meters found changed on a switch behind the controller's back and repaired."}),
		ContractViolations: prometheus.NewCounter(prometheus.CounterOpts{Name: "nimbus_flow_contract_violations_total", Help: "Flows refused because they break their table's contract."}),
		MalformedClosures:  prometheus.NewCounter(prometheus.CounterOpts{Name: "nimbus_malformed_connections_total", Help: "Switch connections closed for a malformed message."}),
		MastershipChanges:  prometheus.NewCounter(prometheus.CounterOpts{Name: "nimbus_mastership_acquired_total", Help: "Times this replica became master of a switch (role confirmed by barrier)."}),
		SwitchesMastered:   prometheus.NewGauge(prometheus.GaugeOpts{Name: "nimbus_switches_mastered", Help: "Switches this replica is master of."}),
		FabricLinks:        prometheus.NewGauge(prometheus.GaugeOpts{Name: "nimbus_fabric_links", Help: "Fabric links in the store (LLDP-discovered, one per direction)."}),
		MalformedLLDP:      prometheus.NewCounter(prometheus.CounterOpts{Name: "nimbus_lldp_malformed_total", Help: "LLDP frames received that Nimbus did not send or could not parse."}),
		OpenFlowConns:      prometheus.NewGauge(prometheus.GaugeOpts{Name: "nimbus_openflow_connections", Help: "Open OpenFlow connections, handshaking or not."}),
		OpenFlowRefused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "nimbus_openflow_connections_refused_total",
			Help: "OpenFlow connections refused: max_conns, max_conns_per_addr, duplicate_dpid, dpid_not_bound."}, []string{"reason"}),
		OpenFlowDropped: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "nimbus_openflow_connections_dropped_total",
			Help: "OpenFlow connections closed for misbehaviour: handshake, request_timeout, multipart_too_big."}, []string{"reason"}),
		UnencodableReplies: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "nimbus_packet_in_replies_dropped_total", Help: "Packet-in replies dropped because they cannot be encoded (too large for one OpenFlow message), by app and message."}, []string{"app", "message"}),
		ReconcileRefused:   prometheus.NewCounterVec(prometheus.CounterOpts{Name: "nimbus_reconcile_refused_total", Help: "Groups and flows the reconciler refused to send because they cannot be encoded (e.g. a group too large for one message), by kind."}, []string{"kind"}),
		LearningDropped: prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "nimbus_learning_dropped_total", Help: "Frames the learning app did not send back out: too large for a packet-out and not buffered by the switch."},
			func() float64 { return float64(learning.Dropped()) }),
		ConnPanics: prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "nimbus_openflow_panics_total", Help: "Switch connections closed because serving them panicked (the panic was recovered; a bug)."},
			func() float64 { return float64(ofproto.Panics()) }),
	}
	r.MustRegister(m.SwitchesConnected, m.PacketIns, m.FlowMods, m.ReconcileDuration, m.ReconcileErrors,
		m.DriftRepairs, m.ContractViolations, m.MalformedClosures, m.MastershipChanges, m.SwitchesMastered,
		m.FabricLinks, m.MalformedLLDP, m.OpenFlowConns, m.OpenFlowRefused, m.OpenFlowDropped, m.UnencodableReplies, m.ReconcileRefused, m.LearningDropped, m.ConnPanics,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.PacketInFlowAdds = m.FlowMods.WithLabelValues("packet_in", "add")
	m.RoleRequestFailures = prometheus.NewCounter(prometheus.CounterOpts{Name: "nimbus_role_request_failures_total", Help: "MASTER role requests refused by the switch (or failed) while this replica was elected master."})
	m.RoleGenerationRaises = prometheus.NewCounter(prometheus.CounterOpts{Name: "nimbus_role_generation_raises_total", Help: "Times a switch held a generation_id above the election's and the switch's generation offset was raised past it."})
	m.MastershipResigns = prometheus.NewCounter(prometheus.CounterOpts{Name: "nimbus_mastership_resigns_total", Help: "Elections this replica resigned because the switch kept refusing its MASTER role."})
	m.SwitchesUnconfirmed = prometheus.NewGauge(prometheus.GaugeOpts{Name: "nimbus_switches_master_unconfirmed", Help: "Switches this replica was elected to master whose MASTER role is not confirmed (still trying, or stood aside after failing and no other master seen)."})
	m.EtcdDefrags = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "nimbus_etcd_defrags_total", Help: "Scheduled defragmentations of the embedded etcd member, by result (ok or error)."}, []string{"result"})
	m.EtcdDBSizeBytes = prometheus.NewGauge(prometheus.GaugeOpts{Name: "nimbus_etcd_db_size_bytes", Help: "Size of the embedded etcd member's database file, as of the last maintenance pass."})
	r.MustRegister(m.RoleRequestFailures, m.RoleGenerationRaises, m.MastershipResigns, m.SwitchesUnconfirmed, m.EtcdDefrags, m.EtcdDBSizeBytes)
	m.SNATBlocksLeased = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "nimbus_snat_blocks_leased", Help: "SNAT port blocks of a router's external IP leased by hypervisors."}, []string{"external_ip"})
	m.SNATBlocksFree = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "nimbus_snat_blocks_free", Help: "SNAT port blocks of a router's external IP still free (in blocks of the default size)."}, []string{"external_ip"})
	r.MustRegister(m.SNATBlocksLeased, m.SNATBlocksFree)
	for i := range m.packetIns {
		m.packetIns[i] = m.PacketIns.WithLabelValues(pipeline.AppID(i).String())
	}
	return m
}

// SNATPool sets the SNAT block gauges: leased and free blocks per
// external IP (IPs no longer listed are dropped).
func (m *Metrics) SNATPool(pool map[string][2]int) {
	m.SNATBlocksLeased.Reset()
	m.SNATBlocksFree.Reset()
	for ip, lf := range pool {
		m.SNATBlocksLeased.WithLabelValues(ip).Set(float64(lf[0]))
		m.SNATBlocksFree.WithLabelValues(ip).Set(float64(lf[1]))
	}
}

// NodeSources are what the node agent's metrics read.
type NodeSources struct {
	// SNATDrops: packets conntrack could not NAT into the chassis's
	// blocks.
	SNATDrops func() uint64
	// Probes: the LBaaS health monitors' counters (nil: the agent runs
	// no prober).
	Probes func() lbprobe.Stats
}

// Node is the node agent's registry.
func Node(src NodeSources) *prometheus.Registry {
	r := prometheus.NewRegistry()
	r.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "nimbus_snat_exhaustion_drops_total",
		Help: "Packets this hypervisor dropped because conntrack found no free source port in its SNAT blocks (each one makes the agent lease another block)."},
		func() float64 { return float64(src.SNATDrops()) }),
		collectors.NewGoCollector())
	if src.Probes != nil {
		counter := func(name, help string, v func(lbprobe.Stats) uint64) prometheus.Collector {
			return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, func() float64 { return float64(v(src.Probes())) })
		}
		r.MustRegister(
			counter("nimbus_lb_probes_ok_total", "LBaaS health monitor probes of this chassis's pool members that passed.",
				func(s lbprobe.Stats) uint64 { return s.ProbesOK }),
			counter("nimbus_lb_probes_failed_total", "LBaaS health monitor probes of this chassis's pool members that failed (max_retries in a row mark a member INACTIVE).",
				func(s lbprobe.Stats) uint64 { return s.ProbesFailed }),
			counter("nimbus_lb_members_marked_inactive_total", "Pool members this chassis's prober marked INACTIVE (taken out of the VIP's select group).",
				func(s lbprobe.Stats) uint64 { return s.ToInactive }),
			counter("nimbus_lb_members_marked_active_total", "Pool members this chassis's prober marked ACTIVE again.",
				func(s lbprobe.Stats) uint64 { return s.ToActive }),
			counter("nimbus_lb_status_write_errors_total", "Member status writes to etcd that failed (retried on the next probe).",
				func(s lbprobe.Stats) uint64 { return s.WriteErrors }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "nimbus_lb_members_monitored", Help: "Pool members this chassis probes now."},
				func() float64 { return float64(src.Probes().Monitored) }))
	}
	return r
}

// NodeHandler serves the node agent's /metrics (Node's registry).
func NodeHandler(src NodeSources) http.Handler {
	return promhttp.HandlerFor(Node(src), promhttp.HandlerOpts{})
}

// PacketIn counts one packet-in for app without a label lookup.
func (m *Metrics) PacketIn(app pipeline.AppID) { m.packetIns[app].Inc() }

// Handler serves /metrics.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{})
}

// Reconciled implements reconcile.Observer.
func (m *Metrics) Reconciled(dpid uint64, d time.Duration, ops *reconcile.Ops, err error) {
	m.ReconcileDuration.Observe(d.Seconds())
	if err != nil {
		m.ReconcileErrors.Inc()
	}
	if ops != nil {
		m.FlowMods.WithLabelValues("reconcile", "add").Add(float64(len(ops.FlowAdds)))
		m.FlowMods.WithLabelValues("reconcile", "modify").Add(float64(len(ops.FlowMods)))
		m.FlowMods.WithLabelValues("reconcile", "delete").Add(float64(len(ops.FlowDels)))
	}
}

// Refused implements reconcile.RefusalObserver.
func (m *Metrics) Refused(dpid uint64, kind string, id string, err error) {
	m.ReconcileRefused.WithLabelValues(kind).Inc()
}

// DriftRepaired implements reconcile.Observer.
func (m *Metrics) DriftRepaired(dpid uint64, n int) { m.DriftRepairs.Add(float64(n)) }

var (
	_ reconcile.Observer        = (*Metrics)(nil)
	_ reconcile.RefusalObserver = (*Metrics)(nil)
)

// DBSize implements store.Observer.
func (m *Metrics) DBSize(bytes int64) { m.EtcdDBSizeBytes.Set(float64(bytes)) }

// Defragmented implements store.Observer.
func (m *Metrics) Defragmented(before, after int64, err error) {
	if err != nil {
		m.EtcdDefrags.WithLabelValues("error").Inc()
		return
	}
	m.EtcdDefrags.WithLabelValues("ok").Inc()
	m.EtcdDBSizeBytes.Set(float64(after))
}

// OpenConns implements ofproto.Observer.
func (m *Metrics) OpenConns(n int) { m.OpenFlowConns.Set(float64(n)) }

// ConnRefused implements ofproto.Observer.
func (m *Metrics) ConnRefused(reason string) { m.OpenFlowRefused.WithLabelValues(reason).Inc() }

// ConnDropped implements ofproto.Observer.
func (m *Metrics) ConnDropped(reason string) { m.OpenFlowDropped.WithLabelValues(reason).Inc() }

var _ ofproto.Observer = (*Metrics)(nil)

// String is for debugging.
func (m *Metrics) String() string { return fmt.Sprintf("metrics(%p)", m) }
