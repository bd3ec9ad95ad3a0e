#!/usr/bin/env bash
# Start the system Open vSwitch (userspace datapath works without the kernel
# module) if it is not already answering. Idempotent.
set -euo pipefail
if ovs-vsctl --timeout=2 show >/dev/null 2>&1; then
  echo "ovs: already running"; exit 0
fi
/usr/share/openvswitch/scripts/ovs-ctl start --system-id=random 2>&1 | grep -v ulimit || true
ovs-vsctl --timeout=5 show >/dev/null
echo "ovs: started"
