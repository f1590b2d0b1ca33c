"""`Testbed.netem` / `netem_clear` on the plain fabric in Mininet: the kernel's netem qdisc where
the kernel has one, else the bundled switch's port impairment (`port_impair`). Either way the
impairment must really drop the datagrams crossing the link, in the direction(s) asked for, and
clearing it must stop that. Measured fractions are printed to the terminal."""
from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys

import pytest

from waiting import wait_until

from testbed.capture import stop_process
from testbed.failures import EventLog, Netem, Timeline, play
from testbed.net import Testbed as _Testbed  # not a test class
from testbed.net import netem_available
from testbed.routing import path_spine
from testbed.runconfig import MonitorSpec, RunConfig

pytestmark = pytest.mark.root

DPORT = 9300
# A link losing hellos must not be declared down during a phase: 60 missed rounds of 50 ms.
CONFIG = RunConfig(name="netem-test", monitor=MonitorSpec(interval_ms=50, multiplier=60))

SINK = """
import json, socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 21)
s.bind(("", int(sys.argv[1])))
print("ready", flush=True)
seqs, wait = set(), 10.0
try:
    while True:
        s.settimeout(wait)
        seqs.add(int(s.recv(2048)[:8]))
        wait = 1.0                      # stop 1 s after the last datagram
except socket.timeout:
    pass
print(json.dumps(sorted(seqs)), flush=True)
"""
SENDER = """
import socket, sys, time
dst, dport, count, sports = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4].split(",")
socks = []
for port in sports:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("", int(port)))
    socks.append(s)
for i in range(count):
    socks[i % len(socks)].sendto(b"%08d" % i + bytes(100), (dst, dport))
    time.sleep(0.001)
"""


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    return str(tmp_path_factory.mktemp("netem-runs"))


def flows_via(tb, src: str, dst: str, spine: str, n: int = 4) -> list[int]:
    """`n` UDP source ports whose flows from `src` to `dst` cross `spine`."""
    src_ip, dst_ip = tb.topo.ip_of(src), tb.topo.ip_of(dst)
    ports = [p for p in range(21000, 21200)
             if path_spine(tb.topo, src_ip, dst_ip, 17, p, DPORT, view=tb.routing.view) == spine]
    assert len(ports) >= n, f"no {n} flows from {src} to {dst} through {spine}"
    return ports[:n]


def delivered(tb, src: str, dst: str, sports: list[int], count: int) -> float:
    """Send `count` datagrams from `src` to `dst` over the flows `sports`; the fraction received."""
    sink = tb.host(dst).popen([sys.executable, "-c", SINK, str(DPORT)], stdout=subprocess.PIPE, text=True)
    try:
        assert sink.stdout.readline().strip() == "ready"
        argv = [sys.executable, "-c", SENDER, tb.topo.ip_of(dst), str(DPORT), str(count),
                ",".join(map(str, sports))]
        sender = tb.host(src).popen(argv, stderr=subprocess.PIPE, text=True)
        _out, err = sender.communicate(timeout=60)
        assert sender.returncode == 0, err
        got = json.loads(sink.communicate(timeout=30)[0])
    finally:
        stop_process(sink)
    return len(got) / count


def binomial_ok(fraction: float, n: int, p: float) -> bool:
    return abs(fraction * n - n * p) <= 5 * math.sqrt(n * p * (1 - p))


def impair_counters(tb, switch: str, port: int, direction: str) -> dict:
    return tb.switch(switch).stats()["ports"][str(port)][f"impair_{direction}"]


def test_netem_on_a_link_drops_what_crosses_it_and_clear_stops_it(results, report):
    expected = "netem" if netem_available() else "switch-port"
    with _Testbed(CONFIG, results_dir=results) as tb:
        run_dir = tb.run_dir
        up, down = flows_via(tb, "h1", "h3", "s1"), flows_via(tb, "h3", "h1", "s1")
        assert delivered(tb, "h1", "h3", up, 300) >= 0.99

        assert tb.netem("l1-s1", Netem(loss=40)) == expected          # both directions
        lossy = delivered(tb, "h1", "h3", up, 500)
        report(f"netem l1-s1 loss 40% ({expected}): {lossy:.1%} of 500 datagrams h1->h3 via s1 delivered")
        assert binomial_ok(lossy, 500, 0.6), lossy
        if expected == "switch-port":
            assert impair_counters(tb, "l1", tb.topo.port_of("l1", "s1"), "out")["lost"] > 0
            assert impair_counters(tb, "s1", tb.topo.port_of("s1", "l1"), "out")["impairment"]["loss"] == 40
        assert tb.netem_clear("l1-s1") == expected
        assert delivered(tb, "h1", "h3", up, 300) >= 0.99

        tb.netem("l1-s1", Netem(loss=50), end="s1")                   # only what s1 sends to l1
        forward, backward = delivered(tb, "h1", "h3", up, 300), delivered(tb, "h3", "h1", down, 400)
        report(f"netem l1-s1 end s1 loss 50%: h1->h3 {forward:.1%}, h3->h1 {backward:.1%} delivered")
        assert forward >= 0.99 and binomial_ok(backward, 400, 0.5), (forward, backward)
        tb.netem_clear("l1-s1", end="s1")

        tb.netem("h1-l1", Netem(loss=50), end="h1")                   # a host link: l1's port, "in"
        from_host = delivered(tb, "h1", "h3", up, 400)
        report(f"netem h1-l1 end h1 loss 50%: h1->h3 {from_host:.1%} delivered")
        assert binomial_ok(from_host, 400, 0.5), from_host
        if expected == "switch-port":
            assert impair_counters(tb, "l1", tb.topo.port_of("l1", "h1"), "in")["lost"] > 0
        tb.netem_clear("h1-l1")
        assert delivered(tb, "h1", "h3", up, 200) >= 0.99

        timeline = Timeline.from_dicts([
            {"at": 0, "kind": "netem", "target": "l2-s2", "params": {"delay_ms": 5, "end": "s2"}},
            {"at": 0.1, "kind": "netem_clear", "target": "l2-s2", "params": {"end": "s2"}}], tb.topo)
        with EventLog(os.path.join(run_dir, "events.csv")) as log:
            assert [r[2] for r in play(timeline, tb.failure_handlers(), log)] == [None, None]
    rows = list(csv.DictReader(open(os.path.join(run_dir, "events.csv"))))
    assert [(r["kind"], r["ok"], r["mechanism"]) for r in rows] == [("netem", "1", expected),
                                                                    ("netem_clear", "1", expected)]
    with open(os.path.join(run_dir, "provenance.json")) as f:
        prov = json.load(f)
    assert prov["targets"]["link_impairment"] == expected
    done = [(e["action"], e["link"], e["mechanism"]) for e in prov["link_impairments"]]
    assert done[:2] == [("netem", "l1-s1", expected), ("netem_clear", "l1-s1", expected)] and len(done) == 8
    if expected == "switch-port":
        assert prov["link_impairments"][0]["points"] == [f"l1:{tb.topo.port_of('l1', 's1')}/out",
                                                         f"s1:{tb.topo.port_of('s1', 'l1')}/out"]
        assert prov["link_impairments"][4]["points"] == [f"l1:{tb.topo.port_of('l1', 'h1')}/in"]


def test_a_links_configured_loss_is_applied_without_netem_and_survives_a_switch_restart(results, report):
    """fabric.link_overrides: h1-l1 loses 30 %. Without kernel netem the bundled switches stand
    in for it (port impairment on l1's port to h1, both directions); restarting l1 keeps it."""
    from testbed.topology import FabricSpec, LinkParams
    fabric = FabricSpec(link_overrides=(("h1-l1", LinkParams(loss=30)),))
    config = RunConfig(name="netem-static", fabric=fabric, monitor=CONFIG.monitor)
    with _Testbed(config, results_dir=results) as tb:
        up = flows_via(tb, "h1", "h3", "s1")
        resolve_neighbours(tb, "h1", "h3")       # ARP over the lossy link first (the kernel
        lossy = delivered(tb, "h1", "h3", up, 500)   # drops what waits too long for it)
        report(f"fabric link h1-l1 loss 30%: {lossy:.1%} of 500 datagrams h1->h3 delivered")
        assert binomial_ok(lossy, 500, 0.7), lossy
        tb.crash_switch("l1")
        wait_until(lambda: "l1" in tb.routing.view.down_switches, 20, "the crash of l1 to be detected")
        tb.restart_switch("l1")
        wait_until(lambda: "l1" not in tb.routing.view.down_switches, 20, "l1 to be back and reprogrammed")
        tb.wait_converged()
        resolve_neighbours(tb, "h1", "h3")
        again = delivered(tb, "h1", "h3", flows_via(tb, "h1", "h3", "s1"), 500)
        report(f"after restarting l1: {again:.1%} delivered")
        assert binomial_ok(again, 500, 0.7), again


def resolve_neighbours(tb, src: str, dst: str, tries: int = 30) -> None:
    """Ping until one echo comes back (bounded), so `src` has resolved its gateway."""
    for _ in range(tries):
        if "1 received" in tb.host(src).cmd(f"ping -c 1 -W 1 {tb.topo.ip_of(dst)}"):
            return
    raise AssertionError(f"{src} got no echo from {dst} in {tries} tries")

