#!/bin/sh
# busybox udhcpc script for lab hosts and VMs: configures the interface
# from the lease (address, mask, MTU option 26, default route). Debian's
# busybox ships no default script.
#   udhcpc -i IFACE -q -n -O mtu -s test/mininet/udhcpc.sh
# With OUT set, it also writes "<address> <mtu|none>" there (the tests
# read it).
case "$1" in
deconfig)
	ip -4 addr flush dev "$interface"
	ip link set "$interface" up
	;;
bound|renew)
	ip -4 addr flush dev "$interface"
	[ -n "$mtu" ] && ip link set "$interface" mtu "$mtu"
	ip addr add "$ip/${mask:-$subnet}" dev "$interface"
	if [ -n "$router" ]; then
		ip route replace default via "${router%% *}" dev "$interface"
	fi
	[ -n "$OUT" ] && echo "$ip ${mtu:-none}" > "$OUT"
	;;
esac
exit 0
