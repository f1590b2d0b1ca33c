"""The worked example of docs/writing-an-app.md: flow-size demotion (p4apps/examples/demote.p4).

In-process (AppFabric, fake clock): flows are marked high, mid, then low as their byte count
crosses the thresholds, in both variants; with RedPlane a spine crash moves the count (value and
seq) to the other spine, so the flow's marks continue as if nothing happened; without it the
count is lost and a long flow is promoted back to high. Mininet (root, slow): as the server
sees it, a probe stream through the spine that crashes keeps its low class after the crash with
RedPlane, and is promoted to high again without it.
"""
import ipaddress
import os

import pytest
from scapy.all import IP, UDP, Ether, rdpcap

from analysis import runs
from p4apps.apps import app_named
from testbed.experiment import HostTools
from testbed.net import Testbed as _Testbed  # not a test class
from testbed.redplane import protocol
from testbed.redplane.config import RedPlaneSettings
from testbed.redplane.sim import AppFabric
from testbed.routing import HASH_SRC, FabricView, path_spine
from testbed.runconfig import RunConfig
from testbed.traffic import read_log, tool_argv

STAT_WRITE, STAT_LOCAL_WRITE = 1, 10
PKT = 100                               # IPv4 total length of every test packet
APP = app_named("demote")
HIGH, MID = APP.T1 // PKT, (APP.T2 - APP.T1) // PKT      # packets per class before low
F = protocol.SEQ_FENCE


def packet(f, client, server, sport=5555) -> bytes:
    _, gw = f.topo.gateway_of(client)
    return bytes(Ether(src=f.topo.mac_of(client), dst=gw) / IP(src=f.topo.ip_of(client), dst=f.topo.ip_of(server))
                 / UDP(sport=sport, dport=80) / bytes(PKT - 28))


def key_of(f, client, sport=5555) -> int:
    """The flow's RedPlane key: client address ++ source port."""
    return int(ipaddress.IPv4Address(f.topo.ip_of(client))) << 16 | sport


def classes(frames) -> list[str]:
    return [APP.dscp_class(Ether(x)[IP].tos) for x in frames]


def expected(n: int) -> list[str]:
    """The marks of a flow's first n packets (of PKT bytes each), with no failure."""
    return (["high"] * HIGH + ["mid"] * MID + ["low"] * n)[:n]


def spine_of_flow(f) -> str:
    return max(f.topo.spines(), key=lambda s: f.fabric.switches[s].stats.received)


def slot(f, spine, key) -> dict:
    """The flow's RedPlane registers on `spine` (value, seq), or {} if it has no slot there."""
    regs = f.fabric.switches[spine].registry.registers
    keys = regs["SpineIngress.redplane.rp_keys"].cells
    if key not in keys:
        return {}
    idx = keys.index(key)
    return {"value": regs["SpineIngress.redplane.rp_values"].cells[idx],
            "seq": regs["SpineIngress.redplane.rp_seqs"].cells[idx]}


def fail(f, spine) -> str:
    """Crash `spine`, reroute around it; returns the survivor."""
    f.fabric.crash(spine)
    f.routing.set_view(FabricView(down_switches=frozenset({spine})), "test")
    return next(s for s in f.topo.spines() if s != spine)


def run(f, n, client, server):
    for _ in range(n):
        f.send(client, packet(f, client, server))


@pytest.fixture(params=["redplane", "noft"])
def fabric(request):
    f = AppFabric("demote", request.param)
    return f, f.topo.clients()[0], f.topo.servers()[0]


# ---------------------------------------------------------------------------------------------
def test_registered_with_a_library_layout_and_source_endpoint_hashing():
    layout = protocol.layout_for(APP.layout)
    assert (layout.key_bits, layout.value_bits, layout.header_bytes) == (48, 48, 19)
    assert [n for n, _ in layout.key_fields + layout.value_fields] == ["key_addr", "key_port", "value_addr",
                                                                      "value_port"]
    f = AppFabric("demote")
    assert set(APP.hash_modes(f.topo, "redplane").values()) == {HASH_SRC}
    assert os.path.isfile(APP.program_path())


def test_flows_are_demoted_as_they_grow(fabric):
    f, c, s = fabric
    n = HIGH + MID + 20
    run(f, n, c, s)
    assert classes(f.seen[s]) == expected(n)
    assert len(f.fabric.inbox[c]) == n                      # the echoes come back
    spine = spine_of_flow(f)
    writes = HIGH + MID                                      # one per packet until T2, then reads
    if f.variant == "redplane":
        assert f.stat(spine, STAT_WRITE) == writes
        assert [r.type for _, r in f.stores[0].requests].count(protocol.LEASE_RENEW) == writes
    else:
        assert f.stat(spine, STAT_LOCAL_WRITE) == writes and f.stores[0].requests == []


def test_two_flows_are_counted_apart(fabric):
    f, c, s = fabric
    run(f, HIGH + MID, c, s)                                  # flow 1 reaches T2
    f.send(c, packet(f, c, s, sport=6666))                   # flow 2 starts high
    f.send(c, packet(f, c, s))                               # flow 1 is low
    assert classes(f.seen[s][-2:]) == ["high", "low"]


@pytest.mark.parametrize("crash_after", [HIGH // 2, HIGH + MID // 2, HIGH + MID + 5])
def test_with_redplane_a_spine_crash_keeps_the_count(crash_after):
    """Crash in the high, mid or low phase: the marks of the whole flow are those of a flow
    without failure, and the survivor holds the store's committed value and seq."""
    f = AppFabric("demote", "redplane")
    c, s = f.topo.clients()[0], f.topo.servers()[0]
    run(f, crash_after, c, s)
    old, key = spine_of_flow(f), key_of(f, c)
    before = slot(f, old, key)
    assert before["value"] == min(crash_after, HIGH + MID) * PKT
    new = fail(f, old)
    f.send(c, packet(f, c, s))                               # waits for the old lease to expire
    f.advance(f.settings.lease_ms / 1000 + 0.01)
    run(f, HIGH + MID, c, s)
    total = crash_after + 1 + HIGH + MID
    assert classes(f.seen[s]) == expected(total)
    committed = f.stores[0].state.get(key)
    after = slot(f, new, key)
    assert after == {"value": committed.value, "seq": committed.committed}
    assert after["value"] == min(total, HIGH + MID) * PKT
    assert protocol.seq_newer(after["seq"], before["seq"]) and protocol.seq_distance(before["seq"], after["seq"]) > F


def test_without_redplane_a_spine_crash_promotes_long_flows_again():
    f = AppFabric("demote", "noft")
    c, s = f.topo.clients()[0], f.topo.servers()[0]
    run(f, HIGH + MID + 5, c, s)
    old = spine_of_flow(f)
    assert slot(f, old, key_of(f, c))["value"] == (HIGH + MID) * PKT
    new = fail(f, old)
    run(f, 3, c, s)
    assert classes(f.seen[s][-3:]) == ["high"] * 3            # the count restarted at 0
    assert slot(f, new, key_of(f, c))["value"] == 3 * PKT


# ---------------------------------------------------------------------------------------------
# Mininet: a probe stream through s1 (which crashes) and one through s2, as the servers see them

RATE, DURATION, CRASH_AT = 200, 6.0, 2.5        # failover.py --quick: 6 s trials, crash at 2.5 s


def _sport(tb, client, server, spine) -> int:
    """A source port whose client-to-server packets cross `spine` under the app's hashing."""
    src, dst = tb.topo.ip_of(client), tb.topo.ip_of(server)
    modes = APP.hash_modes(tb.topo, tb.config.variant)
    return next(p for p in range(40000, 41000) if path_spine(tb.topo, src, dst, 17, p, 7000, modes) == spine)


def _trial(results_dir, variant):
    """Run the streams with s1 crashing CRASH_AT s in; (run_dir, crash time s, {spine: (client,
    sport)}, client logs)."""
    cfg = RunConfig(name=f"example-demote-{variant}", app="demote", variant=variant,
                    redplane=RedPlaneSettings(lease_ms=1000.0, switch_lease_ms=600.0),
                    failures=({"at": CRASH_AT, "kind": "switch_crash", "target": "s1"},),
                    capture=("h3-eth0",))
    with _Testbed(cfg, results_dir=results_dir) as tb, HostTools(tb) as tools:
        tools.start("h3", tool_argv("probe", "recv", port=7000, echo=True, duration=DURATION + 20))
        streams, logs, senders = {}, {}, []
        for client, spine in (("h1", "s1"), ("h2", "s2")):
            sport = _sport(tb, client, "h3", spine)
            logs[spine] = os.path.join(tb.run_dir, f"{client}.probe.csv")
            senders.append(tools.start(client, tool_argv("probe", "send", dst=tb.topo.ip_of("h3"), dport=7000,
                                                         sport=sport, rate=RATE, duration=DURATION, echo=True,
                                                         log=logs[spine])))
            streams[spine] = (tb.topo.ip_of(client), sport)
        tb.play_failures().join(timeout=DURATION + 10)
        assert tools.wait(senders, timeout=DURATION + 20) == [0, 0]
    return tb.run_dir, runs.failure_time(tb.run_dir), streams, logs


def _marks(run_dir, src, sport) -> list[tuple[float, str]]:
    """(time, class) of the stream's packets captured at the server h3."""
    out = []
    for p in rdpcap(os.path.join(run_dir, "pcaps", "h3_h3-eth0.pcap")):
        if IP in p and UDP in p and p[IP].src == src and p[UDP].sport == sport:
            out.append((float(p.time), APP.dscp_class(p[IP].tos)))
    return out


def _replies_after(log, t) -> int:
    return sum(1 for r in read_log(log).rows if r.get("event") == "reply" and int(r["recv_ns"]) / 1e9 > t)


@pytest.mark.root
@pytest.mark.slow
@pytest.mark.parametrize("variant", ["redplane", "noft"])
def test_mininet_stream_through_the_crashed_spine(tmp_path, capsys, variant):
    """With RedPlane the stream that crossed s1 stays low after the crash; without it the
    survivor counts from 0 and marks it high again. The stream through s2 stays low."""
    run_dir, crash, streams, logs = _trial(str(tmp_path), variant)
    for spine, (src, sport) in streams.items():
        marks = _marks(run_dir, src, sport)
        before = [c for t, c in marks if t < crash]
        after = [c for t, c in marks if t > crash]
        replies = _replies_after(logs[spine], crash + 2)
        with capsys.disabled():
            print(f"\n  [measured] {variant} via {spine}: {len(before)} packets before the crash "
                  f"({before.count('high')} high, {before.count('mid')} mid), {len(after)} after "
                  f"({after.count('high')} high, {after.count('low')} low); {replies} replies from 2 s after it")
        assert before[:1] == ["high"] and before[-1] == "low" and "mid" in before, before
        assert len(after) > RATE and replies > RATE                # the stream continued
        if variant == "redplane" or spine == "s2":
            assert set(after) == {"low"}, after
        else:
            assert after[0] == "high" and after[-1] == "low", after
