#!/usr/bin/python3
"""Nimbus Mininet lab: build a topology of OVS userspace switches attached to
one or more remote OpenFlow 1.3 controllers, wait until every switch is
connected, ping all host pairs and report the loss.

Run with the system interpreter (/usr/bin/python3, where Debian's mininet
package lives) as root:

    /usr/bin/python3 test/mininet/pingall.py --topo linear,4 \
        --controller 127.0.0.1:6653 --timeout 60

The last line on stdout is always

    PINGALL loss=<pct> sent=<n> received=<n> [error=<reason>]

and the exit status is 0 only for 0% loss with at least one ping sent
(1: loss, 2: bad arguments, 3: setup failed or switches never connected).
Progress and diagnostics go to stderr.

Every node name starts with a random per-run prefix (e.g. "m3fa"), so
switches are m3fas1.., hosts m3fah1.., switch ports m3fas1-eth1..; parallel
runs therefore do not collide. Each switch bridge carries
external_ids:nimbus-lab-owner=<pid> and nimbus-lab-prefix=<prefix>, which
test/mininet/cleanup.sh uses to remove only the leftovers of dead runs.
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

try:
    from mininet.clean import Cleanup  # noqa: F401  (import check only)
    from mininet.log import setLogLevel
    from mininet.net import Mininet
    from mininet.node import OVSSwitch, RemoteController
    from mininet.topo import Topo
except ImportError as exc:  # pragma: no cover - depends on the machine
    sys.stderr.write(
        'pingall.py: cannot import mininet (%s).\n'
        'Install the lab dependencies with scripts/deps.sh and run this\n'
        'script with /usr/bin/python3 (a pyenv/venv python3 in PATH does\n'
        'not see Debian\'s mininet package).\n' % exc)
    print('PINGALL loss=100 sent=0 received=0 error=no_mininet', flush=True)
    sys.exit(3)

OWNER_KEY = 'nimbus-lab-owner'
PREFIX_KEY = 'nimbus-lab-prefix'
PREFIX = None  # set in main()


def log(msg):
    sys.stderr.write('pingall: %s\n' % msg)
    sys.stderr.flush()


# --------------------------------------------------------------------------
# Topologies. Names are prefix + 's'/'h' + index; dpids are explicit.


class LabTopo(Topo):
    """Topology with prefixed node names and explicit datapath IDs."""

    def build(self, kind='linear', args=(), prefix='m', dpid_base=0):
        self.prefix = prefix
        self.dpid_base = dpid_base
        self.nsw = 0
        self.nhost = 0
        builder = getattr(self, 'build_' + kind, None)
        if builder is None:
            raise ValueError('unknown topology %r' % kind)
        builder(*args)

    def sw(self):
        self.nsw += 1
        return self.addSwitch('%ss%d' % (self.prefix, self.nsw),
                              dpid='%016x' % (self.dpid_base + self.nsw))

    def host(self):
        self.nhost += 1
        return self.addHost('%sh%d' % (self.prefix, self.nhost))

    # single,K: one switch, K hosts
    def build_single(self, k=2):
        s = self.sw()
        for _ in range(k):
            self.addLink(self.host(), s)

    # linear,K[,N]: K switches in a chain, N hosts on each (default 1)
    def build_linear(self, k=2, n=1):
        prev = None
        for _ in range(k):
            s = self.sw()
            for _ in range(n):
                self.addLink(self.host(), s)
            if prev is not None:
                self.addLink(s, prev)
            prev = s

    # tree,DEPTH[,FANOUT]: like Mininet's TreeTopo (default fanout 2)
    def build_tree(self, depth=1, fanout=2):
        def add(d):
            if d == 0:
                return self.host()
            s = self.sw()
            for _ in range(fanout):
                self.addLink(s, add(d - 1))
            return s
        add(depth)

    # ring,K[,N]: K switches in a loop, N hosts each (default 1). The loop
    # floods forever unless the controller handles loops (a plain learning
    # switch does not).
    def build_ring(self, k=3, n=1):
        sws = [self.sw() for _ in range(k)]
        for s in sws:
            for _ in range(n):
                self.addLink(self.host(), s)
        for i in range(k):
            if k > 2 or i == 0:
                self.addLink(sws[i], sws[(i + 1) % k])


def parse_topo(text):
    parts = text.split(',')
    kind = parts[0].strip()
    try:
        args = tuple(int(p) for p in parts[1:] if p.strip() != '')
    except ValueError:
        raise ValueError('bad topology %r: parameters must be integers' % text)
    if kind not in ('single', 'linear', 'tree', 'ring'):
        raise ValueError('unknown topology %r (single,K | linear,K[,N] | '
                         'tree,DEPTH[,FANOUT] | ring,K[,N])' % kind)
    return kind, args


def parse_controller(text):
    """'IP:PORT', 'tcp:IP:PORT' or 'PORT' -> (ip, port)."""
    t = text
    if t.startswith('tcp:'):
        t = t[4:]
    if re.fullmatch(r'\d+', t):
        return '127.0.0.1', int(t)
    m = re.fullmatch(r'([^:]+):(\d+)', t)
    if not m:
        raise ValueError('bad controller %r (want IP:PORT)' % text)
    return m.group(1), int(m.group(2))


# --------------------------------------------------------------------------
# Mininet node classes


class LabSwitch(OVSSwitch):
    """OVSSwitch whose bridge is marked with the owner PID and run prefix."""

    def bridgeOpts(self):
        return (OVSSwitch.bridgeOpts(self) +
                ' external_ids:%s=%d external_ids:%s=%s' %
                (OWNER_KEY, os.getpid(), PREFIX_KEY, PREFIX))


class LabController(RemoteController):
    """RemoteController without Mininet's telnet probe.

    Mininet's RemoteController opens a throw-away telnet connection to the
    controller when it is created, which a controller under test would see as
    a bogus OpenFlow client. We wait for the switches' is_connected instead.
    """

    def checkListening(self):
        return


# --------------------------------------------------------------------------
# OVS helpers


def vsctl(*args):
    out = subprocess.run(['ovs-vsctl', '--timeout=10'] + list(args),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         universal_newlines=True, check=False)
    return out.returncode, out.stdout


def controller_status(switch):
    """[(target, is_connected, role)] for the switch's controllers."""
    rc, out = vsctl('--format=json', '--columns=controller', 'list',
                    'bridge', switch)
    if rc != 0:
        return []
    data = json.loads(out)['data']
    if not data:
        return []
    val = data[0][0]
    if val[0] == 'set':
        uuids = [u[1] for u in val[1]]
    else:
        uuids = [val[1]]
    if not uuids:
        return []
    rc, out = vsctl('--format=json',
                    '--columns=target,is_connected,role',
                    'list', 'controller', *uuids)
    if rc != 0:
        return []
    res = []
    for target, connected, role in json.loads(out)['data']:
        if isinstance(role, list):
            role = ''
        res.append((target, connected is True, role))
    return res


# OVS refreshes Controller.is_connected in OVSDB only every 5 s
# (stats-update-interval), but ovs-vswitchd logs each rconn state change at
# once ("...|rconn|INFO|<bridge><->tcp:IP:PORT: connected"). We read the log
# from the point where the run started and fall back to OVSDB.
VSWITCHD_LOG = os.path.join(os.environ.get('OVS_LOGDIR',
                                           '/var/log/openvswitch'),
                            'ovs-vswitchd.log')
RCONN_RE = re.compile(r'\|rconn\|[A-Z]+\|([^|<]+)<->(\S+?): (.*)$')


def log_offset():
    try:
        return os.path.getsize(VSWITCHD_LOG)
    except OSError:
        return 0


def rconn_states(offset):
    """{(bridge, target): connected} from the vswitchd log after offset."""
    states = {}
    try:
        with open(VSWITCHD_LOG, 'rb') as f:
            f.seek(0, os.SEEK_END)
            if f.tell() < offset:
                offset = 0  # rotated
            f.seek(offset)
            data = f.read().decode('utf-8', 'replace')
    except OSError:
        return states
    for line in data.splitlines():
        m = RCONN_RE.search(line)
        if not m:
            continue
        key, event = (m.group(1), m.group(2)), m.group(3)
        if event == 'connected' or event.startswith('connected '):
            states[key] = True
        elif event.startswith(('connecting', 'connection ', 'no response',
                               'disconnect', 'waiting ',
                               'continuing to retry')):
            states[key] = False
    return states


def wait_connected(switches, targets, deadline, need_all, offset):
    """Wait until each switch is connected to one (or all) controllers."""
    remaining = list(switches)
    last_db = 0.0
    while True:
        live = rconn_states(offset)
        for s in list(remaining):
            flags = [live.get((s, t)) for t in targets]
            if need_all:
                ok = all(f is True for f in flags)
            else:
                ok = any(f is True for f in flags)
            if ok:
                remaining.remove(s)
        # Fallback for a log we cannot read or parse: OVSDB, once a second.
        if remaining and time.time() - last_db >= 1:
            last_db = time.time()
            for s in list(remaining):
                flags = [c for _, c, _ in controller_status(s)]
                if flags and (all(flags) if need_all else any(flags)):
                    remaining.remove(s)
        if not remaining:
            return []
        if time.time() >= deadline:
            return remaining
        time.sleep(0.05)


def dump_flows(switches, limit=40):
    for s in switches:
        r = subprocess.run(['ovs-ofctl', '-O', 'OpenFlow13', 'dump-flows', s],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           universal_newlines=True, check=False)
        lines = r.stdout.splitlines()
        log('flows of %s (%d lines):' % (s, len(lines)))
        for line in lines[:limit]:
            sys.stderr.write('    %s\n' % line)
        if len(lines) > limit:
            sys.stderr.write('    ...\n')


def cleanup_prefix(prefix):
    """Remove whatever is left of this run: bridges and root-ns links."""
    rc, out = vsctl('--format=json', '--columns=name,external_ids', 'list',
                    'bridge')
    if rc == 0:
        for name, ids in json.loads(out)['data']:
            if dict(ids[1]).get(PREFIX_KEY) == prefix:
                vsctl('--if-exists', 'del-br', name)
    r = subprocess.run(['ip', '-o', 'link', 'show'], stdout=subprocess.PIPE,
                       universal_newlines=True, check=False)
    pat = re.compile(r'^\d+: (%s[a-z]\d+-eth\d+)[@:]' % re.escape(prefix))
    for line in r.stdout.splitlines():
        m = pat.match(line)
        if m:
            subprocess.run(['ip', 'link', 'del', m.group(1)],
                           stderr=subprocess.DEVNULL, check=False)


def build_net(kind, targs, dpid_base, protocols, ctrls):
    """Build (not start) the prefixed topology of userspace OVS switches in
    fail-mode secure, attached to the remote controllers [(ip, port)]."""
    topo = LabTopo(kind=kind, args=targs, prefix=PREFIX, dpid_base=dpid_base)

    def switch(name, **params):
        return LabSwitch(name, datapath='user', protocols=protocols,
                         failMode='secure', **params)

    net = Mininet(topo=topo, switch=switch, controller=None,
                  autoSetMacs=True, build=False, waitConnected=False)
    for i, (ip, port) in enumerate(ctrls):
        net.addController('%sc%d' % (PREFIX, i), controller=LabController,
                          ip=ip, port=port)
    net.build()
    return net


# --------------------------------------------------------------------------
# Ping


def ping_once(src, dst, wait):
    out = src.cmd('ping -c1 -W%d %s' % (wait, dst.IP()))
    m = re.search(r'(\d+) packets transmitted, (\d+)( packets)? received',
                  out)
    if not m:
        return 1, 0
    return int(m.group(1)), int(m.group(2))


def ping_all(hosts, wait, deadline):
    sent = received = 0
    misses = []
    for src in hosts:
        for dst in hosts:
            if src is dst:
                continue
            if time.time() >= deadline:
                # Out of time: count the remaining pairs as lost.
                sent += 1
                misses.append('%s->%s' % (src.name, dst.name))
                continue
            s, r = ping_once(src, dst, wait)
            sent += s
            received += min(r, s)
            if r < s:
                misses.append('%s->%s' % (src.name, dst.name))
    return sent, received, misses


def fmt_pct(x):
    s = '%.2f' % x
    return s.rstrip('0').rstrip('.') if '.' in s else s


# --------------------------------------------------------------------------


def hold(src, dst, seconds):
    """Ping dst from src every 10 ms for seconds; report what was lost."""
    print('HOLD start %s->%s %.3f' % (src.name, dst.name, time.time()),
          flush=True)
    # -c, not -w: with a deadline ping exits without waiting for the
    # reply to its last request, which would count as a loss.
    out = src.cmd('ping -n -q -i 0.01 -W 2 -c %d %s' %
                  (int(seconds * 100), dst.IP()))
    m = re.search(r'(\d+) packets transmitted, (\d+) received', out)
    if not m:
        print('HOLD sent=0 received=0 error=%s' %
              out.strip().replace('\n', ' ')[:200], flush=True)
        return
    print('HOLD sent=%s received=%s' % (m.group(1), m.group(2)), flush=True)


class Interrupted(Exception):
    pass


def on_signal(signum, _frame):
    raise Interrupted('signal %d' % signum)


def main():
    global PREFIX
    ap = argparse.ArgumentParser(
        description='Mininet pingall against remote OpenFlow 1.3 controllers')
    ap.add_argument('--topo', default='linear,4',
                    help='single,K | linear,K[,N] | tree,DEPTH[,FANOUT] | '
                         'ring,K (default linear,4)')
    ap.add_argument('--controller', action='append', default=[],
                    metavar='IP:PORT',
                    help='remote controller; repeat for several '
                         '(default 127.0.0.1:6653)')
    ap.add_argument('--timeout', type=float, default=60,
                    help='overall budget in seconds for connecting and '
                         'pinging (setup/teardown not included; default 60)')
    ap.add_argument('--attempts', type=int, default=3,
                    help='pingall rounds while loss > 0 (default 3)')
    ap.add_argument('--ping-wait', type=int, default=1,
                    help='seconds each ping waits for its reply (default 1)')
    ap.add_argument('--protocols', default='OpenFlow13',
                    help='bridge protocols (default OpenFlow13)')
    ap.add_argument('--all-controllers', action='store_true',
                    help='a switch counts as connected only when connected '
                         'to every controller (default: at least one)')
    ap.add_argument('--prefix', default=None,
                    help='node name prefix (default: "m" + 3 random hex '
                         'digits); keep it short, Linux names are <= 15 bytes')
    ap.add_argument('--dpid-base', type=lambda s: int(s, 0), default=0,
                    help='switch N gets datapath ID dpid-base+N (default 0)')
    ap.add_argument('--hold', type=float, default=0,
                    help='after a clean pingall, ping from the first host to '
                         'the last every 10 ms for this many seconds, '
                         'printing "HOLD start" when it begins and '
                         '"HOLD sent=N received=M" at the end (for '
                         'failover tests that act while it runs)')
    ap.add_argument('--verbose', action='store_true',
                    help='Mininet info logging on stderr')
    args = ap.parse_args()

    try:
        kind, targs = parse_topo(args.topo)
        ctrls = [parse_controller(c) for c in
                 (args.controller or ['127.0.0.1:6653'])]
    except ValueError as exc:
        log(str(exc))
        print('PINGALL loss=100 sent=0 received=0 error=usage', flush=True)
        return 2
    PREFIX = args.prefix or 'm' + secrets.token_hex(2)[:3]
    if not re.fullmatch(r'[a-z][a-z0-9]{0,5}', PREFIX):
        log('prefix must be 1-6 lowercase letters/digits, starting with a '
            'letter')
        print('PINGALL loss=100 sent=0 received=0 error=usage', flush=True)
        return 2
    if os.geteuid() != 0:
        log('Mininet needs root')
        print('PINGALL loss=100 sent=0 received=0 error=not_root',
              flush=True)
        return 3

    setLogLevel('info' if args.verbose else 'warning')
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, on_signal)

    t0 = time.time()
    net = None
    result = None
    code = 3
    try:
        net = build_net(kind, targs, args.dpid_base, args.protocols, ctrls)
        offset = log_offset()
        net.start()
        t_started = time.time()
        log('prefix %s: %d switches, %d hosts up in %.2fs; controllers %s' %
            (PREFIX, len(net.switches), len(net.hosts), t_started - t0,
             ', '.join('%s:%d' % c for c in ctrls)))
        deadline = t_started + args.timeout

        names = [s.name for s in net.switches]
        targets = ['tcp:%s:%d' % c for c in ctrls]
        missing = wait_connected(names, targets, deadline,
                                 args.all_controllers, offset)
        if missing:
            for s in missing:
                log('%s not connected: %s' % (s, controller_status(s)))
            result = (100.0, 0, 0, 'not_connected')
        else:
            log('all switches connected after %.2fs' %
                (time.time() - t_started))
            sent = received = 0
            for attempt in range(1, max(1, args.attempts) + 1):
                ta = time.time()
                sent, received, misses = ping_all(net.hosts, args.ping_wait,
                                                  deadline)
                loss = 100.0 * (sent - received) / sent if sent else 100.0
                log('attempt %d: loss=%s%% (%d/%d) in %.2fs%s' %
                    (attempt, fmt_pct(loss), received, sent,
                     time.time() - ta,
                     (' missing: ' + ' '.join(misses[:12])) if misses else ''))
                if sent and received == sent:
                    break
                if time.time() >= deadline:
                    log('out of time after attempt %d' % attempt)
                    break
            loss = 100.0 * (sent - received) / sent if sent else 100.0
            result = (loss, sent, received, None)
            if received != sent or not sent:
                dump_flows(names)
            elif args.hold > 0:
                hold(net.hosts[0], net.hosts[-1], args.hold)
        loss, sent, received, err = result
        code = 0 if (err is None and sent and received == sent) else \
            (3 if err else 1)
    except Interrupted as exc:
        log('interrupted (%s)' % exc)
        result = (100.0, 0, 0, 'interrupted')
        code = 3
    except Exception as exc:  # setup failure: report it, still clean up
        log('error: %r' % exc)
        result = (100.0, 0, 0, 'setup_failed')
        code = 3
    finally:
        # A second signal must not abort the teardown.
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        tstop = time.time()
        if net is not None:
            try:
                net.stop()
            except Exception as exc:
                log('net.stop failed: %r' % exc)
        try:
            cleanup_prefix(PREFIX)
        except Exception as exc:
            log('cleanup failed: %r' % exc)
        log('teardown %.2fs, total %.2fs' % (time.time() - tstop,
                                             time.time() - t0))
        loss, sent, received, err = result or (100.0, 0, 0, 'setup_failed')
        line = 'PINGALL loss=%s sent=%d received=%d' % (fmt_pct(loss), sent,
                                                         received)
        if err:
            line += ' error=%s' % err
        print(line, flush=True)
    return code


if __name__ == '__main__':
    sys.exit(main())
