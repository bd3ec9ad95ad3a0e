#!/usr/bin/env bash
# Multi-hypervisor GRE overlay lab for humans: the same topology that
# internal/hvlab builds inside Go tests. See README.md next to this file.
#
#   lab.sh up   [-n HVS] [-c TARGET]...   build the lab (default 3 hypervisors)
#   lab.sh down                           tear it down (only what `up` made)
#   lab.sh status                         show what exists
#
# Environment: LAB_PREFIX (default "nlab", at most 5 characters), LAB_DIR
# (default /tmp/nimbus-hvlab-$LAB_PREFIX), LAB_UNDERLAY (default 172.31.255)
# and LAB_MGMT (default 169.254.100): the first three octets of the underlay
# /24 and of the management /24 (one /30 per hypervisor); LAB_UNDERLAY_MTU
# (default 1500; 1600 lets 1500-byte VM packets through GRE whole).
# With -c, br-int of every hypervisor gets these controller targets; the
# word ROOT in a target is replaced by the hypervisor's root-side management
# IP, e.g. -c tcp:ROOT:6653 (the controller must listen on 0.0.0.0:6653).
# Without -c, br-int gets static GRE flows so that the two demo VMs (vm1 on
# hv1, vm2 on hv2, 10.0.0.1 and 10.0.0.2) ping each other.
# Every hypervisor also gets br-vlan (netdev, standalone), the bridge of the
# physical network physnet1: its port eth-phys is a veth to phN on the Linux
# bridge br1 in the underlay namespace (no IP, IPv6 off). Node agents map it
# with --bridge-mappings physnet1:br-vlan. Without -c, br-int is patched to
# it (phy-physnet1 <-> int-physnet1, as the node agent names them) and two
# more demo VMs (vm3 on hv1, vm4 on hv2, 10.0.1.3 and 10.0.1.4) ping each
# other on VLAN 100: `ip netns exec $P-ul tcpdump -nei br1` shows the tags.
# The external network (floating IPs): every hypervisor gets br-ex (netdev,
# standalone) whose port eth-ex is a veth to exN on the Linux bridge br2 in
# the underlay namespace, and the "internet" namespace $P-inet sits on br2
# with $LAB_EXTERNAL.1/24 (default 198.51.100: use .1 as the external
# subnet's gateway_ip) and 203.0.113.80 on its loopback, serving HTTP
# (busybox httpd: / and /cgi-bin/ip, the client address as seen). Node
# agents map it with --bridge-mappings extnet:br-ex (add physnet1:br-vlan
# for both: physnet1:br-vlan,extnet:br-ex).
set -euo pipefail

P=${LAB_PREFIX:-nlab}
DIR=${LAB_DIR:-/tmp/nimbus-hvlab-$P}
UL=${LAB_UNDERLAY:-172.31.255}
MG=${LAB_MGMT:-169.254.100}
MTU=${LAB_UNDERLAY_MTU:-1500}
EXT=${LAB_EXTERNAL:-198.51.100}
SCHEMA=/usr/share/openvswitch/vswitch.ovsschema
[ ${#P} -le 5 ] || { echo "lab.sh: LAB_PREFIX at most 5 characters" >&2; exit 2; }

ns_hv()  { echo "$P-hv$1"; }
ns_ul()  { echo "$P-ul"; }
ns_inet(){ echo "$P-inet"; }
ns_vm()  { echo "$P-$1"; }
tun_ip() { echo "$UL.$((10 + $1))"; }
mg_root(){ echo "$MG.$((4 * $1 + 1))"; }
mg_hv()  { echo "$MG.$((4 * $1 + 2))"; }

# hvctl N CMD...: run an OVS tool against hypervisor N's OVS.
hvctl() { local n=$1; shift; OVS_RUNDIR="$DIR/hv$n" OVS_DBDIR="$DIR/hv$n" OVS_LOGDIR="$DIR/hv$n" ip netns exec "$(ns_hv "$n")" "$@"; }

up() {
  local hvs=3 ctls=()
  while [ $# -gt 0 ]; do
    case "$1" in
      -n) hvs=$2; shift 2 ;;
      -c) ctls+=("$2"); shift 2 ;;
      *) echo "lab.sh up: unknown argument $1" >&2; exit 2 ;;
    esac
  done
  if [ -e "$DIR" ]; then echo "lab.sh: $DIR exists: run lab.sh down first" >&2; exit 1; fi
  if ip -4 -o addr show | grep -qF " $MG."; then
    echo "lab.sh: $MG.0/24 is in use in the root namespace (another lab?): set LAB_MGMT" >&2; exit 1
  fi
  mkdir -p "$DIR"; echo "$hvs" >"$DIR/hvs"
  local ul; ul=$(ns_ul)
  ip netns add "$ul"
  ip -n "$ul" link set lo up
  ip -n "$ul" link add br0 type bridge
  ip -n "$ul" link set br0 up
  ip -n "$ul" link add br1 type bridge
  ip netns exec "$ul" sysctl -qw net.ipv6.conf.br1.disable_ipv6=1
  ip -n "$ul" link set br1 up
  # External network: br2, and the internet namespace on it.
  ip -n "$ul" link add br2 type bridge
  ip netns exec "$ul" sysctl -qw net.ipv6.conf.br2.disable_ipv6=1
  ip -n "$ul" link set br2 up
  local inet; inet=$(ns_inet)
  ip netns add "$inet"
  ip -n "$inet" link set lo up
  ip link add name inet netns "$ul" type veth peer name inet0 netns "$inet"
  ip netns exec "$ul" sysctl -qw net.ipv6.conf.inet.disable_ipv6=1
  ip netns exec "$inet" sysctl -qw net.ipv6.conf.inet0.disable_ipv6=1
  ip -n "$ul" link set inet master br2 up
  ip -n "$inet" addr add "$EXT.1/24" dev inet0
  ip -n "$inet" addr add 203.0.113.80/32 dev lo
  ip -n "$inet" link set inet0 up
  ip netns exec "$inet" ethtool -K inet0 tx off >/dev/null 2>&1 || true
  mkdir -p "$DIR/www/cgi-bin"
  echo "hello from the nimbus lab internet" >"$DIR/www/index.html"
  printf '#!/bin/sh\na=${REMOTE_ADDR#[}; a=${a%%]}; a=${a#::ffff:}\nprintf '"'"'Content-Type: text/plain\\r\\n\\r\\n%%s\\n'"'"' "$a"\n' >"$DIR/www/cgi-bin/ip"
  chmod 755 "$DIR/www/cgi-bin/ip"
  ip netns exec "$inet" busybox httpd -p 80 -h "$DIR/www"
  for n in $(seq 1 "$hvs"); do
    local ns rd; ns=$(ns_hv "$n"); rd="$DIR/hv$n"
    mkdir -p "$rd"
    ip netns add "$ns"
    ip -n "$ns" link set lo up
    # Underlay link: eth-ul in the hypervisor, hvN on the underlay bridge.
    ip link add name "hv$n" netns "$ul" type veth peer name eth-ul netns "$ns"
    ip -n "$ul" link set "hv$n" master br0 up
    ip -n "$ns" link set eth-ul up
    ip -n "$ul" link set "hv$n" mtu "$MTU"
    ip -n "$ns" link set eth-ul mtu "$MTU"
    # Management link: ${P}mN in the root namespace, mgmt0 in the hypervisor.
    ip link add name "${P}m$n" type veth peer name mgmt0 netns "$ns"
    ip addr add "$(mg_root "$n")/30" dev "${P}m$n"
    ip link set "${P}m$n" up
    ip -n "$ns" addr add "$(mg_hv "$n")/30" dev mgmt0
    ip -n "$ns" link set mgmt0 up
    # Its own OVS.
    ovsdb-tool create "$rd/conf.db" "$SCHEMA"
    hvctl "$n" ovsdb-server "$rd/conf.db" --remote="punix:$rd/db.sock" \
      --pidfile="$rd/ovsdb-server.pid" \
      --log-file="$rd/ovsdb-server.log" -vconsole:off --no-chdir --detach
    hvctl "$n" ovs-vsctl --no-wait init
    hvctl "$n" ovs-vswitchd "unix:$rd/db.sock" --pidfile="$rd/ovs-vswitchd.pid" \
      --log-file="$rd/ovs-vswitchd.log" -vconsole:off --no-chdir --detach
    hvctl "$n" ovs-vsctl --timeout=20 \
      -- add-br br-phy -- set bridge br-phy datapath_type=netdev fail_mode=standalone \
      -- add-port br-phy eth-ul \
      -- set interface br-phy "mtu_request=$MTU" -- set interface eth-ul "mtu_request=$MTU"
    ip -n "$ns" addr add "$(tun_ip "$n")/24" dev br-phy
    ip -n "$ns" link set br-phy up
    # Physical network physnet1: eth-phys on br-vlan, phN on br1.
    ip link add name "ph$n" netns "$ul" type veth peer name eth-phys netns "$ns"
    ip netns exec "$ul" sysctl -qw "net.ipv6.conf.ph$n.disable_ipv6=1"
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.eth-phys.disable_ipv6=1
    ip -n "$ul" link set "ph$n" master br1 up
    ip -n "$ns" link set eth-phys up
    hvctl "$n" ovs-vsctl --timeout=20 \
      -- add-br br-vlan -- set bridge br-vlan datapath_type=netdev fail_mode=standalone \
         other_config:disable-in-band=true \
      -- add-port br-vlan eth-phys
    # External network: eth-ex on br-ex, exN on br2.
    ip link add name "ex$n" netns "$ul" type veth peer name eth-ex netns "$ns"
    ip netns exec "$ul" sysctl -qw "net.ipv6.conf.ex$n.disable_ipv6=1"
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.eth-ex.disable_ipv6=1
    ip -n "$ul" link set "ex$n" master br2 up
    ip -n "$ns" link set eth-ex up
    hvctl "$n" ovs-vsctl --timeout=20 \
      -- add-br br-ex -- set bridge br-ex datapath_type=netdev fail_mode=standalone \
         other_config:disable-in-band=true \
      -- add-port br-ex eth-ex
    hvctl "$n" ovs-vsctl --timeout=20 \
      -- add-br br-int -- set bridge br-int datapath_type=netdev fail_mode=secure \
         protocols=OpenFlow13 other_config:disable-in-band=true \
         "other_config:datapath-id=$(printf '%016x' "$n")"
    if [ ${#ctls[@]} -gt 0 ]; then
      local t=() c
      for c in "${ctls[@]}"; do t+=("${c//ROOT/$(mg_root "$n")}"); done
      hvctl "$n" ovs-vsctl --timeout=20 set-controller br-int "${t[@]}"
    fi
  done
  # GRE mesh: gre-hvM on hvN points at hvM's tunnel IP.
  for n in $(seq 1 "$hvs"); do
    for m in $(seq 1 "$hvs"); do
      [ "$n" = "$m" ] && continue
      hvctl "$n" ovs-vsctl --timeout=20 add-port br-int "gre-hv$m" -- set interface "gre-hv$m" \
        type=gre "options:remote_ip=$(tun_ip "$m")" options:key=flow "ofport_request=$((100 + m))"
    done
  done
  if [ ${#ctls[@]} -eq 0 ] && [ "$hvs" -ge 2 ]; then
    vm 1 vm1 02:00:00:00:00:01 10.0.0.1/24 1
    vm 2 vm2 02:00:00:00:00:02 10.0.0.2/24 1
    hvctl 1 ovs-ofctl -O OpenFlow13 add-flow br-int "in_port=1,actions=set_field:5->tun_id,output:102"
    hvctl 1 ovs-ofctl -O OpenFlow13 add-flow br-int "tun_id=5,in_port=102,actions=output:1"
    hvctl 2 ovs-ofctl -O OpenFlow13 add-flow br-int "in_port=1,actions=set_field:5->tun_id,output:101"
    hvctl 2 ovs-ofctl -O OpenFlow13 add-flow br-int "tun_id=5,in_port=101,actions=output:1"
    echo "lab.sh: demo VMs: ip netns exec $(ns_vm vm1) ping 10.0.0.2"
    # VLAN 100 on physnet1: push the tag towards br-vlan, pop it coming back.
    vm 1 vm3 02:00:00:00:00:03 10.0.1.3/24 3
    vm 2 vm4 02:00:00:00:00:04 10.0.1.4/24 3
    for n in 1 2; do
      hvctl "$n" ovs-vsctl --timeout=20 \
        -- add-port br-int phy-physnet1 -- set interface phy-physnet1 type=patch options:peer=int-physnet1 ofport_request=200 \
        -- add-port br-vlan int-physnet1 -- set interface int-physnet1 type=patch options:peer=phy-physnet1
      hvctl "$n" ovs-ofctl -O OpenFlow13 add-flow br-int "in_port=3,actions=push_vlan:0x8100,set_field:4196->vlan_vid,output:200"
      hvctl "$n" ovs-ofctl -O OpenFlow13 add-flow br-int "in_port=200,dl_vlan=100,actions=pop_vlan,output:3"
    done
    echo "lab.sh: VLAN 100 demo VMs: ip netns exec $(ns_vm vm3) ping 10.0.1.4"
  fi
  echo "lab.sh: up: $hvs hypervisors, state in $DIR"
  status
}

# vm HV NAME MAC CIDR OFPORT: a VM namespace joined to br-int of hypervisor HV.
vm() {
  local n=$1 name=$2 mac=$3 cidr=$4 ofport=$5 ns vns
  ns=$(ns_hv "$n"); vns=$(ns_vm "$name")
  ip netns add "$vns"
  ip -n "$vns" link set lo up
  ip link add name eth0 netns "$vns" address "$mac" type veth peer name "tap$name" netns "$ns"
  ip -n "$vns" addr add "$cidr" dev eth0
  ip -n "$vns" link set eth0 up
  ip -n "$ns" link set "tap$name" up
  hvctl "$n" ovs-vsctl --timeout=20 add-port br-int "tap$name" -- set interface "tap$name" \
    "external_ids:iface-id=$name" "external_ids:attached-mac=$mac" "ofport_request=$ofport"
  echo "$vns" >>"$DIR/vms"
}

# A PID is alive if it exists and is not a zombie (a detached daemon whose
# reaper has not collected it yet still answers kill -0).
alive() {
  kill -0 "$1" 2>/dev/null || return 1
  local st
  st=$(sed -E 's/.*\) ([A-Za-z]).*/\1/' "/proc/$1/stat" 2>/dev/null || echo Z)
  [ "$st" != Z ] && [ "$st" != X ]
}

down() {
  if [ ! -d "$DIR" ]; then echo "lab.sh: no lab in $DIR"; fi
  local hvs=0
  [ -f "$DIR/hvs" ] && hvs=$(cat "$DIR/hvs")
  for n in $(seq 1 "$hvs"); do
    for d in ovs-vswitchd ovsdb-server; do
      local pf="$DIR/hv$n/$d.pid" pid
      [ -f "$pf" ] || continue
      pid=$(cat "$pf")
      # Kill only our own daemon: its command line names our run directory.
      if tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "$DIR/hv$n/"; then
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 50); do alive "$pid" || break; sleep 0.1; done
        alive "$pid" && kill -9 "$pid" 2>/dev/null || true
      fi
    done
    ip link del "${P}m$n" 2>/dev/null || true
    ip netns del "$(ns_hv "$n")" 2>/dev/null || true
  done
  if [ -f "$DIR/vms" ]; then
    while read -r v; do ip netns del "$v" 2>/dev/null || true; done <"$DIR/vms"
  fi
  # The internet namespace's httpd (a daemon of ours: only processes in
  # our own namespace, serving our own directory).
  local pid
  for pid in $(ip netns pids "$(ns_inet)" 2>/dev/null); do
    if tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "$DIR/www"; then kill "$pid" 2>/dev/null || true; fi
  done
  ip netns del "$(ns_inet)" 2>/dev/null || true
  ip netns del "$(ns_ul)" 2>/dev/null || true
  rm -rf "$DIR"
  echo "lab.sh: down"
}

status() {
  ip netns list | grep -E "^$P-" || echo "(no $P-* namespaces)"
  [ -f "$DIR/hvs" ] || return 0
  for n in $(seq 1 "$(cat "$DIR/hvs")"); do
    echo "== hv$n: netns $(ns_hv "$n"), tunnel $(tun_ip "$n"), mgmt root $(mg_root "$n") <-> hv $(mg_hv "$n")"
    echo "   OVS_RUNDIR=$DIR/hv$n ip netns exec $(ns_hv "$n") ovs-vsctl show"
    echo "   physnet1: br-vlan (eth-phys <-> ph$n on br1 in $(ns_ul))"
    echo "   extnet: br-ex (eth-ex <-> ex$n on br2 in $(ns_ul))"
  done
  echo "== internet: netns $(ns_inet), $EXT.1/24 on br2, 203.0.113.80, http://$EXT.1/ and /cgi-bin/ip"
}

case "${1:-}" in
  up) shift; up "$@" ;;
  down) down ;;
  status) status ;;
  *) sed -n '2,/^set /{/^#/p}' "$0"; exit 2 ;;
esac
