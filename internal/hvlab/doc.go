// Package hvlab builds a multi-hypervisor Open vSwitch lab on one machine,
// for tenant-isolation and overlay tests: several "hypervisors", each a
// network namespace running its own ovsdb-server and ovs-vswitchd
// (userspace datapath), joined by an underlay on which they talk GRE, with
// "VMs" (network namespaces) plugged into each hypervisor's br-int.
//
// It is meant to be imported from _test.go files only. Every helper takes a
// testing.TB and fails the test when the lab itself is broken.
//
// Gating: tests start with
//
//	hvlab.RequireE2E(t)
//
// which skips unless NIMBUS_E2E=1 and fails loudly when a tool is missing.
//
// # Topology (New)
//
// A lab has a short unique prefix P ("nh" + 2 hex digits) and, per
// hypervisor N (1-based):
//
//   - netns P-hvN with its own OVS: db, db.sock, pidfiles, ctl sockets and
//     logs live in RunDir() ($TMPDIR/nimbus-hvlab/P/hvN), the daemons are
//     child processes of the test binary (killed by PID in t.Cleanup, and by
//     the kernel if the test binary dies);
//   - underlay: veth eth-ul (in P-hvN) <-> hvN (in netns P-ul, enslaved to
//     the Linux bridge br0 there). eth-ul is a port of the netdev bridge
//     br-phy (fail_mode=standalone, so it forwards like a learning switch),
//     and br-phy's internal port carries the tunnel IP (TunnelIP, by
//     default 172.31.255.(10+N)/24);
//   - management: veth PmN in the root namespace (RootMgmtIP,
//     169.254.X.(4N+1)/30) <-> mgmt0 in P-hvN (MgmtIP, 169.254.X.(4N+2)/30).
//     X is chosen per lab so that concurrent labs never share addresses;
//   - with Options.Physnet, a physical network for VLAN provider networks:
//     veth eth-phys (a port of the netdev bridge br-vlan, PhysnetBridge,
//     fail_mode=standalone) <-> phN on the Linux bridge br1
//     (PhysnetSegment) in P-ul. No addresses and no IPv6 on that segment:
//     a capture on br1 sees tenant frames only. Node agents started with
//     --bridge-mappings physnet1:br-vlan patch br-int to it.
//   - with Options.External, an external network (a flat provider network
//     for router gateways and floating IPs): the Linux bridge br2
//     (ExternalSegment) in P-ul, every hypervisor's netdev bridge br-ex
//     (ExternalBridge, fail_mode=standalone) joined to it by veth eth-ex
//     <-> exN, and the "internet" namespace P-inet on it (Lab.Internet):
//     inet0 holds the external subnet's first host address (default
//     198.51.100.1/24, Options.ExternalCIDR; use it as the external
//     subnet's gateway_ip) and its loopback RemoteIP (203.0.113.80), a
//     host behind that gateway. Internet.ServeHTTP starts busybox httpd
//     there: / answers HTTPPage, /cgi-bin/ip answers the client address
//     the server sees (what NAT tests check). Node agents started with
//     --bridge-mappings extnet:br-ex (ExternalPhysnet:ExternalBridge)
//     patch br-int to it. No IPv6 on the segment.
//
// # Reaching a controller
//
// Loopback is per namespace: an OVS inside P-hvN cannot reach 127.0.0.1 of
// the root namespace. A controller (or etcd, or anything else) running in
// the root namespace is reached at the hypervisor's RootMgmtIP, so it must
// listen on 0.0.0.0 (e.g. ":6653") or on that address. ControllerTarget(port)
// gives the OVS target; in Options.Controllers and CreateBrInt, the hosts
// 127.0.0.1, localhost and 0.0.0.0 are rewritten to RootMgmtIP for you.
//
// # Ownership and cleanup
//
// Everything a lab makes is recorded in its state directory, whose "owner"
// file holds the PID of the test binary. t.Cleanup stops the daemons it
// started (by PID), deletes the namespaces and root links it made, and
// removes the directory, even when the test fails. SweepStale (run by
// RequireE2E) removes the leftovers of labs whose owner process is dead.
// Nothing outside the lab's own namespaces, its PmN links and its state
// directory is ever touched, and no traffic leaves those namespaces.
package hvlab
