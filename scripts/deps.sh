#!/usr/bin/env bash
# Idempotent install of everything the test suite and the labs need.
# Safe to run repeatedly: apt-get only installs what is missing.
set -euo pipefail
PKGS=(openvswitch-switch openvswitch-testcontroller mininet iputils-ping
      etcd-server etcd-client python3-os-ken tcpdump iproute2 procps psmisc
      python3-openstackclient python3-neutronclient busybox ethtool curl socat iperf3 traceroute iptables
      apache2-utils haproxy)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "deps: all packages present"
fi
