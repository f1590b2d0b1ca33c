"""Issue 5, level 3: TCP connections through the stateful apps on the Mininet fabric, with a
spine crash (or a store replica crash) in the middle, judged from what the hosts saw.

Each test opens verified TCP streams (`testbed.traffic.tcpflow`) from the client hosts through
the app, crashes spine s1 from the failure timeline once every stream carries data, and reads
the tools' logs (survived = no reset and every byte delivered, bytes delivered after the crash)
and the servers' pcaps (which public endpoint or backend a connection used before and after).

Every connection meant to be affected crosses s1, by construction: the client's source port
(or, where the app's affinity hashes only the server endpoint, the server port) is chosen with
`testbed.routing.path_spine`, the Python replica of the leaves' ECMP hash, under the app's hash
modes. The noft tests add one control connection through s2, which must survive.

Default fabric: clients h1, h2 (leaf l1), servers h3, h4 (l2), store hosts h5, h6 (l3).
Measured figures are printed to the terminal (also without -s).
"""
from __future__ import annotations

import json
import os
import subprocess
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

import pytest

from waiting import wait_until

from analysis import runs
from analysis.pcap import load_pcap
from p4apps.apps import app_named
from testbed.capture import stop_process
from testbed.net import Testbed as _Testbed  # not a test class
from testbed.provenance import still_running
from testbed.redplane.config import RedPlaneSettings
from testbed.routing import path_spine
from testbed.runconfig import RunConfig, StoreSpec
from testbed.traffic import read_log, tool_argv, wait_ready

pytestmark = pytest.mark.root

DURATION = 6.0          # s of streaming per connection
CRASH_AFTER = 0.5       # s after every stream carries data, from the failure timeline
RATE = 2.0              # Mbit/s per connection
FLOWING = 20_000        # bytes each receiver must have before the failure is played
SETTINGS = RedPlaneSettings(lease_ms=1000.0, switch_lease_ms=600.0, rto_ms=50.0)
RECOVERED = 1.5         # s after the crash: RedPlane streams must deliver after this


# ---------------------------------------------------------------------------------------------
# Reporting, the Testbed

@pytest.fixture(scope="module")
def results(tmp_path_factory):
    return str(tmp_path_factory.mktemp("redplane-runs"))


@contextmanager
def app_testbed(results: str, **config):
    """A Testbed capturing on the servers' interfaces, crashing s1 CRASH_AFTER s after
    `play_failures`, unless `config` says otherwise; checks after it that no process the run
    listed survives."""
    config.setdefault("failures", ({"at": CRASH_AFTER, "kind": "switch_crash", "target": "s1"},))
    cfg = RunConfig(name=f"rp-{config.get('app')}-{config.get('variant', 'redplane')}", redplane=SETTINGS,
                    capture=("h3-eth0", "h4-eth0"), **config)
    with _Testbed(cfg, results_dir=results) as tb:
        yield tb
    with open(os.path.join(tb.run_dir, "manifest.json")) as f:
        manifest = json.load(f)
    assert manifest["status"] == "clean"
    assert not [what for pid, started, what in manifest["pids"] if still_running(pid, started)]


# ---------------------------------------------------------------------------------------------
# Connections: chosen to cross a spine, run as tcpflow processes owned by `Streams`

@dataclass(frozen=True)
class Conn:
    flow: int
    client: str
    sport: int
    port: int                   # the server's port (the LB's virtual port)


def via(tb, src: str, dst: str, sport: int, dport: int) -> str:
    """The spine a TCP packet from host address `src` to `dst` crosses, under the app's
    hash modes (what the leaves are programmed with)."""
    app = app_named(tb.config.app)
    return path_spine(tb.topo, src, dst, 6, sport, dport, app.hash_modes(tb.topo, tb.config.variant),
                      anycast=app.anycast(tb.topo))


def pick(candidates, crosses) -> int:
    """The first candidate for which `crosses(candidate)` holds."""
    return next(c for c in candidates if crosses(c))


def client_conns(tb, plan: list, dst: str) -> list:
    """One connection per (spine, server port) of `plan`, clients taken in turn, each with the
    first unused source port (from 40000) whose client-to-`dst` packets cross that spine."""
    conns, used = [], set()
    clients = tb.topo.clients()
    for i, (spine, port) in enumerate(plan):
        client = clients[i % len(clients)]
        ip = tb.topo.ip_of(client)
        sport = pick((p for p in range(40000, 42000) if p not in used),
                     lambda p: via(tb, ip, dst, p, port) == spine)
        used.add(sport)
        conns.append(Conn(i + 1, client, sport, port))
    return conns


@dataclass
class Outcome:
    """What one connection's ends saw."""

    conn: Conn
    exit_code: int | None
    summary: dict
    rows: list = field(default_factory=list)     # the receiving end's rows of this flow

    @property
    def survived(self) -> bool:
        return self.exit_code == 0 and bool(self.summary.get("survived"))

    def delivered(self, after_ns: int, before_ns: int | None = None) -> int:
        """Stream bytes the receiving end got in (after_ns, before_ns]."""
        return sum(r["interval_bytes"] or 0 for r in self.rows if r["event"] == "interval"
                   and r["time_ns"] > after_ns and (before_ns is None or r["time_ns"] <= before_ns))

    def outage(self, failure_ns: int) -> float:
        """Seconds from the failure to the first delivery after the stream's pause (the first
        empty interval after the failure, before its last delivery); 0 if it never paused,
        inf if nothing arrived after the failure."""
        rows = [r for r in self.rows if r["event"] == "interval" and r["time_ns"] > failure_ns]
        last = max((i for i, r in enumerate(rows) if r["interval_bytes"]), default=None)
        if last is None:
            return float("inf")
        empty = next((i for i, r in enumerate(rows[:last]) if not r["interval_bytes"]), None)
        if empty is None:
            return 0.0
        resumed = next(r for r in rows[empty:] if r["interval_bytes"])
        return (resumed["time_ns"] - failure_ns) / 1e9


class Streams:
    """tcpflow servers and clients in a Testbed's hosts, listed in its manifest and stopped on
    every exit path. `reverse`: the servers send, the clients verify."""

    def __init__(self, tb, reverse: bool = False, rate: float = RATE):
        self.tb, self.reverse, self.rate = tb, reverse, rate
        self.dir = os.path.join(tb.run_dir, "traffic")
        os.makedirs(self.dir, exist_ok=True)
        self.servers: dict = {}         # (host, port) -> (proc, log)
        self.clients: dict = {}         # Conn -> (proc, log)
        self.codes: dict = {}

    def __enter__(self) -> "Streams":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def _start(self, host: str, argv: list, what: str) -> subprocess.Popen:
        proc = self.tb.host(host).popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.tb.manifest.pid(proc.pid, f"test {what} on {host}")
        return proc

    def serve(self, host: str, port: int) -> None:
        log = os.path.join(self.dir, f"server.{host}.{port}.csv")
        argv = tool_argv("tcpflow", "server", port=port, reverse=self.reverse,
                         rate=self.rate if self.reverse else None, log=log, flush_interval=0.05)
        proc = self._start(host, argv, "tcpflow server")
        self.servers[(host, port)] = (proc, log)
        wait_ready(proc, timeout=15)

    def connect(self, conn: Conn, dst: str, duration: float = DURATION) -> None:
        log = os.path.join(self.dir, f"flow{conn.flow}.client.csv")
        argv = tool_argv("tcpflow", "client", dst=dst, port=conn.port, sport=conn.sport, flow=conn.flow,
                         duration=duration, rate=None if self.reverse else self.rate, reverse=self.reverse,
                         finish_timeout=4, log=log, flush_interval=0.05)
        proc = self._start(conn.client, argv, f"tcpflow client {conn.flow}")
        self.clients[conn] = (proc, log)
        wait_ready(proc, timeout=15)

    # -- reading the logs while they are written ------------------------------------------------
    def receiver_rows(self, conn: Conn) -> list:
        """Rows of `conn`'s flow written so far by its receiving end."""
        if self.reverse:
            return _rows(self.clients[conn][1], conn.flow)
        return [r for host, port in self.servers if port == conn.port
                for r in _rows(self.servers[(host, port)][1], conn.flow)]

    def received(self, conn: Conn) -> int:
        return sum(r["interval_bytes"] or 0 for r in self.receiver_rows(conn) if r["event"] == "interval")

    def wait_flowing(self, conns, nbytes: int = FLOWING, timeout: float = 15.0) -> None:
        wait_until(lambda: all(self.received(c) >= nbytes for c in conns), timeout,
                   f"{nbytes} bytes received on every stream", poll=0.05)

    # -- the end ------------------------------------------------------------------------------------
    def finish(self, timeout: float = DURATION + 20) -> dict:
        """Wait (bounded) for every client, stop the servers; {Conn: Outcome}."""
        deadline = time.monotonic() + timeout
        for conn, (proc, _) in self.clients.items():
            try:
                self.codes[conn] = proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.codes[conn] = None
        self.stop()
        return {conn: self._outcome(conn) for conn in self.clients}

    def _outcome(self, conn: Conn) -> Outcome:
        log = read_log(self.clients[conn][1])
        return Outcome(conn, self.codes.get(conn), log.summary or {}, self.receiver_rows(conn))

    def stop(self) -> None:
        procs = [p for p, _ in self.clients.values()] + [p for p, _ in self.servers.values()]
        for proc in procs:
            if proc.poll() is None:
                stop_process(proc)
            if proc.stderr is not None:
                proc.stderr.close()


def _rows(path: str, flow: int) -> list:
    """Complete data rows of `flow` in a tool log that may still be written."""
    try:
        with open(path) as f:
            lines = [line for line in f if line.endswith("\n") and line[:1].isdigit()]
    except FileNotFoundError:
        return []
    out = []
    for line in lines:
        time_ns, fl, event, interval, total, *_ = line.rstrip("\n").split(",")
        if fl == str(flow):
            out.append({"time_ns": int(time_ns), "event": event, "interval_bytes": int(interval or 0),
                        "total_bytes": int(total or 0)})
    return out


def crash(tb) -> int:
    """Play the failure timeline (s1 crashes CRASH_AFTER s later); returns its wall time in ns."""
    thread = tb.play_failures()
    thread.join(timeout=CRASH_AFTER + 10)
    assert not thread.is_alive() and thread.results, "the failure timeline did not run"
    assert all(error is None for _, _, error in thread.results), thread.results
    return int(runs.failure_time(tb.run_dir, thread.results[0][0].kind) * 1e9)


# ---------------------------------------------------------------------------------------------
# What the servers saw (pcaps, read after the Testbed stopped its captures)

def server_packets(run_dir: str) -> dict:
    """{server host: its capture as a DataFrame of TCP packets}."""
    out = {}
    for host in ("h3", "h4"):
        df = load_pcap(os.path.join(run_dir, "pcaps", f"{host}_{host}-eth0.pcap"))
        out[host] = df[df["proto"] == 6]
    return out


def public_endpoints(packets, server_ip: str, port: int, failure_ns: int) -> tuple[set, set]:
    """Source endpoints of the packets reaching `server_ip`:`port`, before and after the failure."""
    df = packets[(packets["dst"] == server_ip) & (packets["dport"] == port)]
    ends = df["src"] + ":" + df["sport"].astype(str)
    return set(ends[df["time_ns"] < failure_ns]), set(ends[df["time_ns"] > failure_ns])


def backends_of(by_host: dict, client_ip: str, sport: int, failure_ns: int) -> tuple[set, set]:
    """The servers that received packets of the client endpoint, before and after the failure."""
    before, after = set(), set()
    for host, df in by_host.items():
        mine = df[(df["src"] == client_ip) & (df["sport"] == sport)]
        if (mine["time_ns"] < failure_ns).any():
            before.add(host)
        if (mine["time_ns"] > failure_ns).any():
            after.add(host)
    return before, after


def describe(outcome: Outcome, failure_ns: int) -> str:
    s = outcome.summary
    how = f"survived, outage {outcome.outage(failure_ns):.2f} s" if outcome.survived else f"broke ({s.get('failure')})"
    return (f"flow {outcome.conn.flow} ({outcome.conn.client}:{outcome.conn.sport}): {how}, "
            f"{outcome.delivered(failure_ns)} B delivered after the failure")


# ---------------------------------------------------------------------------------------------
# NAT

def test_nat_with_redplane_keeps_connections_and_public_endpoints(results, report):
    """Two connections whose outbound packets cross s1 (the inbound ones are hashed on the
    public endpoint, chosen by the NAT); each has its own server port, so the server's capture
    tells their public endpoints apart."""
    with app_testbed(results, app="nat", variant="redplane") as tb, Streams(tb) as streams:
        server, ip = "h3", tb.topo.ip_of("h3")
        conns = client_conns(tb, [("s1", 6001), ("s1", 6002)], ip)
        for c in conns:
            streams.serve(server, c.port)
            streams.connect(c, ip)
        streams.wait_flowing(conns)
        failure = crash(tb)
        outcomes = streams.finish()
    packets = server_packets(tb.run_dir)[server]
    for c, o in outcomes.items():
        before, after = public_endpoints(packets, ip, c.port, failure)
        report(f"nat/redplane {describe(o, failure)}; public endpoint {sorted(before)} -> {sorted(after)}")
        assert o.survived, o.summary
        assert o.delivered(failure + int(RECOVERED * 1e9)) > 0
        assert len(before) == 1 and after == before, (before, after)


def test_nat_without_fault_tolerance_remaps_and_breaks(results, report):
    """Without RedPlane the survivor allocates a new public endpoint from its own port range:
    the server sees the connection come from elsewhere and resets it. Both directions follow
    the server endpoint (the NAT's affinity hashing), so the server port decides the spine."""
    with app_testbed(results, app="nat", variant="noft") as tb, Streams(tb) as streams:
        server, ip = "h3", tb.topo.ip_of("h3")
        ports = iter(range(6001, 7000))
        plan = [("s1", 1, "h1"), ("s1", 2, "h2"), ("s2", 3, "h1")]
        conns = []
        for spine, flow, client in plan:
            port = pick(ports, lambda p, spine=spine: via(tb, tb.topo.ip_of(client), ip, 40000, p) == spine)
            conns.append(Conn(flow, client, 40000 + flow, port))
        for c in conns:
            streams.serve(server, c.port)
            streams.connect(c, ip)
        streams.wait_flowing(conns)
        failure = crash(tb)
        outcomes = streams.finish()
    packets = server_packets(tb.run_dir)[server]
    for (spine, _, _), (c, o) in zip(plan, outcomes.items()):
        before, after = public_endpoints(packets, ip, c.port, failure)
        report(f"nat/noft via {spine}: {describe(o, failure)}; public endpoint {sorted(before)} -> {sorted(after)}")
        assert len(before) == 1
        if spine == "s1":
            assert not o.survived, o.summary
            assert after - before, "the survivor did not remap the connection"
        else:
            assert o.survived and after == before, (o.summary, before, after)


# ---------------------------------------------------------------------------------------------
# Firewall

def firewall_run(results, variant: str):
    """Two connections through s1 and (noft) a control through s2, streaming server to client."""
    with app_testbed(results, app="firewall", variant=variant) as tb, Streams(tb, reverse=True) as streams:
        ip, port = tb.topo.ip_of("h3"), 6100
        spines = ["s1", "s1"] + (["s2"] if variant == "noft" else [])
        conns = client_conns(tb, [(spine, port) for spine in spines], ip)
        for c, spine in zip(conns, spines):           # symmetric hashing: replies take the same spine
            assert via(tb, ip, tb.topo.ip_of(c.client), port, c.sport) == spine
        streams.serve("h3", port)
        for c in conns:
            streams.connect(c, ip)
        streams.wait_flowing(conns)
        failure = crash(tb)
        outcomes = streams.finish()
    return spines, outcomes, failure


def test_firewall_with_redplane_keeps_inbound_streams(results, report):
    spines, outcomes, failure = firewall_run(results, "redplane")
    for o in outcomes.values():
        report(f"firewall/redplane (server to client): {describe(o, failure)}")
        assert o.survived, o.summary
        assert o.delivered(failure + int(RECOVERED * 1e9)) > 0


def test_firewall_without_fault_tolerance_stalls_inbound_streams(results, report):
    """The pinhole admitting the server's packets lived on the crashed spine only. The stream
    runs server to client (--reverse): with an upload, the client's own data would re-open the
    pinhole on the survivor at its next segment, hiding the loss. Here the client only sends
    ACKs for what it receives, and receives nothing: the stream stalls until the client stops
    it at the end of its duration (its FIN then re-opens the pinhole, too late)."""
    spines, outcomes, failure = firewall_run(results, "noft")
    for spine, o in zip(spines, outcomes.values()):
        stopped = next(r["time_ns"] for r in o.rows if r["event"] == "connected") + int(DURATION * 1e9)
        report(f"firewall/noft via {spine} (server to client): {describe(o, failure)}")
        if spine == "s1":
            assert o.delivered(failure + int(0.3e9), stopped) == 0, "the stream did not stall"
        else:
            assert o.survived, o.summary


# ---------------------------------------------------------------------------------------------
# Load balancer

LB_PORT = 6200


def lb_run(results, variant: str, spines: list, rate: float):
    """Connections to the virtual address, crossing `spines` (both directions follow the client
    endpoint, so its source port decides); every backend serves LB_PORT."""
    with app_testbed(results, app="lb", variant=variant) as tb, Streams(tb, rate=rate) as streams:
        vip = app_named("lb").destination(tb.topo, "h3")
        conns = client_conns(tb, [(spine, LB_PORT) for spine in spines], vip)
        for backend in tb.topo.servers():
            streams.serve(backend, LB_PORT)
            for c, spine in zip(conns, spines):
                assert via(tb, tb.topo.ip_of(backend), tb.topo.ip_of(c.client), LB_PORT, c.sport) == spine
        for c in conns:
            streams.connect(c, vip)
        streams.wait_flowing(conns)
        failure = crash(tb)
        outcomes = streams.finish()
    by_host = server_packets(tb.run_dir)
    seen = {c: backends_of(by_host, tb.topo.ip_of(c.client), c.sport, failure) for c in conns}
    return outcomes, seen, failure


def test_lb_with_redplane_keeps_each_connection_on_its_backend(results, report):
    outcomes, seen, failure = lb_run(results, "redplane", ["s1", "s1"], RATE)
    for c, o in outcomes.items():
        before, after = seen[c]
        report(f"lb/redplane {describe(o, failure)}; backend {sorted(before)} -> {sorted(after)}")
        assert o.survived, o.summary
        assert o.delivered(failure + int(RECOVERED * 1e9)) > 0
        assert len(before) == 1 and after == before


def test_lb_without_fault_tolerance_misdirects_connections(results, report):
    """The survivor picks a backend at random for each connection it does not know: with two
    backends, half of the connections through s1 land on the other backend, whose kernel resets
    them. Eight connections cross s1 (all keeping their backend by chance: p = 1/256); each
    misdirected one must break, each that kept its backend must survive, as must the control
    connection through s2."""
    spines = ["s1"] * 8 + ["s2"]
    outcomes, seen, failure = lb_run(results, "noft", spines, 1.0)
    misdirected = 0
    for spine, (c, o) in zip(spines, outcomes.items()):
        before, after = seen[c]
        moved = bool(after - before)
        misdirected += moved
        report(f"lb/noft via {spine} {describe(o, failure)}; backend {sorted(before)} -> {sorted(after)}")
        assert len(before) == 1
        if moved:
            assert not o.survived, o.summary
        else:
            assert o.survived, o.summary
        if spine == "s2":
            assert not moved
    assert misdirected >= 1, "no connection through s1 was sent to another backend"


# ---------------------------------------------------------------------------------------------
# S1: checkpoint-recovery

CHECKPOINT_MS = 2000.0      # long enough to create a connection and crash within one period


def nat_key(ip: str, port: int) -> int:
    """A NAT flow key as the switch stores it: address ++ port."""
    a, b, c, d = map(int, ip.split("."))
    return (((a << 24) | (b << 16) | (c << 8) | d) << 16) | port


def checkpointed_keys(tb, spine: str) -> set:
    saved = tb.checkpointer.sink.get(spine) or {"slots": {}}
    return {cells[0] for cells in saved["slots"].values()}


@pytest.mark.parametrize("restore", [
    "testbed",
    "test",
])
def test_s1_keeps_connections_checkpointed_before_the_crash(results, report, restore):
    """NAT with S1 checkpoint-recovery: connection A is created, a checkpoint of s1 includes
    it, connection B is created right after that checkpoint, then s1 crashes before the next
    one. A keeps its public endpoint and survives; B's mapping is lost (remapped, broken).
    restore="testbed": the Testbed is expected to restore the checkpoint on the survivor;
    restore="test": the test does that itself (reading s1's last checkpoint from the store and
    writing it into s2's registers, what the controller would do on detection) just before
    the crash, to check the rest of the S1 path end to end."""
    with app_testbed(results, app="nat", variant="s1", checkpoint_ms=CHECKPOINT_MS) as tb, Streams(tb) as streams:
        server, ip = "h3", tb.topo.ip_of("h3")
        ports = iter(range(6301, 7000))
        a, b = (Conn(flow, client, 40000 + flow,
                     pick(ports, lambda p, client=client: via(tb, tb.topo.ip_of(client), ip, 40000, p) == "s1"))
                for flow, client in ((1, "h1"), (2, "h2")))
        key = {c: nat_key(tb.topo.ip_of(c.client), c.sport) for c in (a, b)}
        for c in (a, b):
            streams.serve(server, c.port)
        streams.connect(a, ip, duration=DURATION + CHECKPOINT_MS / 1000)
        streams.wait_flowing([a])
        wait_until(lambda: key[a] in checkpointed_keys(tb, "s1"), CHECKPOINT_MS / 1000 + 5,
                   "a checkpoint with A")
        streams.connect(b, ip)                  # right after that checkpoint
        streams.wait_flowing([b])
        if restore == "test":
            assert tb.checkpointer.restore("s1", "s2") > 0
        failure = crash(tb)
        last = checkpointed_keys(tb, "s1")
        assert key[a] in last and key[b] not in last, "B was checkpointed: the crash came too late"
        outcomes = streams.finish()
    packets = server_packets(tb.run_dir)[server]
    ends = {c: public_endpoints(packets, ip, c.port, failure) for c in (a, b)}
    for c, name in ((a, "A (checkpointed)"), (b, "B (after the checkpoint)")):
        report(f"nat/s1 restore by {restore}: {name} {describe(outcomes[c], failure)}; "
               f"public endpoint {sorted(ends[c][0])} -> {sorted(ends[c][1])}")
    oa, ob = outcomes[a], outcomes[b]
    assert oa.survived and oa.delivered(failure + int(RECOVERED * 1e9)) > 0, oa.summary
    assert len(ends[a][0]) == 1 and ends[a][1] == ends[a][0], ends[a]
    assert not ob.survived and ends[b][1] - ends[b][0], (ob.summary, ends[b])


# ---------------------------------------------------------------------------------------------
# A store replica failure

def shard_head_on(tb, spine: str, shard: int = 0) -> str:
    """The store address `spine`'s rp_shards entry points at (dotted quad)."""
    out = tb.switch(spine).cli(f"table_dump_entry rp_shards {tb.shard_handles[(spine, shard)]}")
    value = int(out.split("rp_set_store -")[1].split(",")[0].strip(), 16)
    return ".".join(str((value >> s) & 0xFF) for s in (24, 16, 8, 0))


def switch_requests(replica) -> int:
    """Requests from switches a replica has answered or forwarded so far."""
    return sum(replica.command("stats")["stats"]["requests"].values())


def test_nat_survives_a_crash_of_the_store_head(results, report):
    """A shard replicated on two store hosts (h5 head, h6 tail). The head crashes during NAT
    traffic with RedPlane: the chain is repaired and the spines are re-pointed at the new head,
    so lease renewals keep the connections' leases alive and no connection notices."""
    failures = ({"at": CRASH_AFTER, "kind": "store_crash", "target": "h5"},)
    with app_testbed(results, app="nat", variant="redplane", stores=StoreSpec(replicas=2), failures=failures) as tb, \
            Streams(tb) as streams:
        assert [r.host.name for r in tb.stores.chains[0]] == ["h5", "h6"]
        ip = tb.topo.ip_of("h3")
        conns = client_conns(tb, [("s1", 6401), ("s2", 6402)], ip)
        for c in conns:
            streams.serve("h3", c.port)
            streams.connect(c, ip)
        streams.wait_flowing(conns)
        tail = tb.stores.chains[0][1]
        before = switch_requests(tail)
        failure = crash(tb)
        assert [r.host.name for r in tb.stores.chains[0]] == ["h6"]
        heads = {spine: shard_head_on(tb, spine) for spine in tb.topo.spines()}
        outcomes = streams.finish()
        after = switch_requests(tail)
    report(f"store head h5 crash: spines now point at {heads}; h6 handled {after - before} switch "
           f"requests after it")
    assert heads == {spine: tb.topo.ip_of("h6") for spine in tb.topo.spines()}
    assert after > before, "the new head got no request from the spines"
    for o in outcomes.values():
        report(f"nat/redplane, store head crash: {describe(o, failure)}")
        assert o.survived, o.summary
        assert o.delivered(failure + int(2 * SETTINGS.lease_ms * 1e6)) > 0
