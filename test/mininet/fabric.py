#!/usr/bin/python3
"""Nimbus fabric lab: a Mininet topology of OVS userspace switches attached
to remote OpenFlow 1.3 controllers, kept up for a test to drive.

    /usr/bin/python3 test/mininet/fabric.py --topo ring,4 \\
        --controller 127.0.0.1:6653

It builds the topology (the topologies of pingall.py: single, linear, tree,
ring), waits until every switch is connected, gives every host a named
network namespace (`ip netns exec <prefix>h1 ...` works), flushes the hosts'
addresses (they are meant to use DHCP) and prints one line

    FABRIC {"prefix": ..., "hosts": {...}, "switches": {...}, "links": [...]}

where hosts maps each host to its pid, netns, interface, MAC and the
switch-side interface it is plugged into (the name to bind a Neutron port
to with binding:profile {"port_name": ...}), switches maps switch names to
datapath ids, and links lists the switch-to-switch links as interface
pairs. It then holds the lab until stdin closes (or a signal), tears
everything down and prints "FABRIC done". Exit status 3: setup failed.
"""

import argparse
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pingall  # noqa: E402
from pingall import (Interrupted, build_net, cleanup_prefix,  # noqa: E402
                     controller_status, log_offset, on_signal,
                     parse_controller, parse_topo, wait_connected)
from mininet.log import setLogLevel  # noqa: E402  (pingall checked it)


def log(msg):
    sys.stderr.write('fabric: %s\n' % msg)
    sys.stderr.flush()


def run(*args):
    return subprocess.run(list(args), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, universal_newlines=True,
                          check=False)


def main():
    ap = argparse.ArgumentParser(description='Mininet fabric lab')
    ap.add_argument('--topo', default='tree,2,2')
    ap.add_argument('--controller', action='append', default=[])
    ap.add_argument('--timeout', type=float, default=60)
    ap.add_argument('--prefix', default=None)
    ap.add_argument('--dpid-base', type=lambda s: int(s, 0), default=0)
    args = ap.parse_args()
    kind, targs = parse_topo(args.topo)
    ctrls = [parse_controller(c) for c in
             (args.controller or ['127.0.0.1:6653'])]
    prefix = args.prefix or 'f' + secrets.token_hex(2)[:3]
    if not re.fullmatch(r'[a-z][a-z0-9]{0,5}', prefix):
        log('bad prefix')
        return 2
    pingall.PREFIX = prefix
    setLogLevel('warning')
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, on_signal)

    net = None
    netns = []
    code = 3
    try:
        net = build_net(kind, targs, args.dpid_base, 'OpenFlow13', ctrls)
        offset = log_offset()
        net.start()
        names = [s.name for s in net.switches]
        missing = wait_connected(names, ['tcp:%s:%d' % c for c in ctrls],
                                 time.time() + args.timeout, False, offset)
        if missing:
            for s in missing:
                log('%s not connected: %s' % (s, controller_status(s)))
            raise RuntimeError('switches not connected: %s' % missing)
        hosts = {}
        for h in net.hosts:
            ns = h.name
            r = run('ip', 'netns', 'attach', ns, str(h.pid))
            if r.returncode != 0:
                raise RuntimeError('ip netns attach %s: %s' % (ns, r.stdout))
            netns.append(ns)
            intf = h.defaultIntf()
            h.cmd('ip -4 addr flush dev %s' % intf.name)
            # No IPv6 chatter (router solicitations, DAD) in captures.
            h.cmd('sysctl -qw net.ipv6.conf.all.disable_ipv6=1')
            link = intf.link
            sw_intf = link.intf2 if link.intf1 is intf else link.intf1
            hosts[h.name] = {'pid': h.pid, 'netns': ns, 'intf': intf.name,
                             'mac': h.MAC(), 'port': sw_intf.name,
                             'switch': sw_intf.node.name}
        switches = {s.name: s.dpid for s in net.switches}
        links = []
        swset = set(net.switches)
        for link in net.links:
            if link.intf1.node in swset and link.intf2.node in swset:
                links.append([link.intf1.name, link.intf2.name])
        print('FABRIC ' + json.dumps({'prefix': prefix, 'hosts': hosts,
                                      'switches': switches, 'links': links}),
              flush=True)
        sys.stdin.read()  # hold until the driver closes stdin
        code = 0
    except Interrupted as exc:
        log('interrupted (%s)' % exc)
        code = 0
    except Exception as exc:
        log('error: %r' % exc)
        code = 3
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        for ns in netns:
            run('ip', 'netns', 'delete', ns)
        if net is not None:
            try:
                net.stop()
            except Exception as exc:
                log('net.stop failed: %r' % exc)
        try:
            cleanup_prefix(prefix)
        except Exception as exc:
            log('cleanup failed: %r' % exc)
        print('FABRIC done', flush=True)
    return code


if __name__ == '__main__':
    sys.exit(main())
