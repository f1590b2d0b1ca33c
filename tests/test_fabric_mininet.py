"""Issue 4 end to end: the plain leaf-spine fabric (2 spines, 3 leaves, 2 hosts per leaf, the
routing program only) in Mininet, with its routing controller and liveness monitor.

What is checked, from what the hosts and switches saw:
- every host reaches every other host (ping, all ordered pairs);
- ECMP spreads flows over both spines (switch port counters, compared with the Python replica
  of the hash, `testbed.routing.path_spine`);
- after a spine crash and after a leaf-spine link failure, every pair reaches every other again
  within the detection time plus the reprogramming time, both measured from the controller's
  events and reported;
- a restarted spine is reprogrammed and carries traffic again;
- leaving the Testbed (normally or by an exception) removes every interface, process and
  namespace of the run and records the end in the manifest and provenance;
- `python -m testbed.cleanup` removes exactly what a "running" manifest lists.

Every Testbed built here is checked for a clean teardown when its block ends (`fabric`).
Measured figures are printed to the terminal (also without -s).
"""
from __future__ import annotations

import json
import os
import re
import select
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import dropwhile, permutations, takewhile

import pytest

from waiting import wait_until

from testbed.capture import stop_process
from testbed.net import Testbed as _Testbed  # not a test class
from testbed.provenance import REPO, process_start_time, still_running
from testbed.routing import path_spine
from testbed.runconfig import RunConfig
from testbed.workload import WorkloadRun, default_flows

pytestmark = pytest.mark.root

PING_INTERVAL = 0.02            # continuous pings during a failure: one every 20 ms per pair
RECOVERY_SLACK = 0.25           # s: next ping after the reprogramming, its reply, scheduling
REPROGRAM_BOUND = 3.0           # s: generous bound on the controller's reprogramming time
DETECTION_BOUND = 1.5           # s: generous bound on the monitor's detection time


# ---------------------------------------------------------------------------------------------
# Waiting and reporting

# ---------------------------------------------------------------------------------------------
# Building a Testbed and checking that it leaves nothing behind

@dataclass
class Footprint:
    """What a run created that must be gone after it: read while the Testbed is up."""

    run_dir: str
    interfaces: list
    namespaces: set
    tmp: str


def footprint(tb: _Testbed) -> Footprint:
    interfaces = [intf for link in tb.topo.links() for intf in (link.intf1, link.intf2)]
    interfaces += [f"{sw}-{end}" for sw in tb.topo.switches() for end in ("cpu", "cpuh")]
    namespaces = {os.readlink(f"/proc/{tb.host(h).pid}/ns/net") for h in tb.topo.hosts()}
    assert len(namespaces) == len(tb.topo.hosts()), "every host has its own namespace"
    return Footprint(tb.run_dir, interfaces, namespaces, tb.tmp)


def processes_in(namespaces: set) -> list:
    """(pid, command line) of every process still in one of `namespaces`."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if os.readlink(f"/proc/{pid}/ns/net") in namespaces:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    found.append((int(pid), f.read().replace(b"\0", b" ").decode(errors="replace")))
        except OSError:
            continue
    return found


def survivors(run_dir: str) -> list:
    """Manifest entries whose process still runs (same pid and the same kernel start time)."""
    with open(os.path.join(run_dir, "manifest.json")) as f:
        pids = json.load(f)["pids"]
    return [(pid, what) for pid, started, what in pids if still_running(pid, started)]


def assert_torn_down(fp: Footprint, status: str = "ok") -> None:
    """Nothing of the run remains; manifest and provenance record the end (`status` is the
    expected provenance status, or its prefix for an exception)."""
    left = [name for name in fp.interfaces if os.path.exists(f"/sys/class/net/{name}")]
    assert not left, f"interfaces left behind: {left}"
    assert not survivors(fp.run_dir), f"processes left behind: {survivors(fp.run_dir)}"
    assert not processes_in(fp.namespaces), f"namespaces kept alive by: {processes_in(fp.namespaces)}"
    assert not os.path.exists(fp.tmp), f"temporary directory left behind: {fp.tmp}"
    with open(os.path.join(fp.run_dir, "manifest.json")) as f:
        assert json.load(f)["status"] == "clean"
    with open(os.path.join(fp.run_dir, "provenance.json")) as f:
        prov = json.load(f)
    assert prov["config"]["fabric"]["spines"] == 2 and "app" in prov["config"]
    assert re.fullmatch(r"[0-9a-f]{40}", prov["git"]["commit"] or ""), prov["git"]
    assert prov["status"].startswith(status) and "finished" in prov


@contextmanager
def fabric(results: str, config: RunConfig | None = None):
    """A Testbed of `config` (default: the plain fabric); checks its teardown on normal exit."""
    config = config or RunConfig(name="fabric-test")
    with _Testbed(config, results_dir=results) as tb:
        fp = footprint(tb)
        yield tb
    assert_torn_down(fp)


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    return str(tmp_path_factory.mktemp("fabric-runs"))


# ---------------------------------------------------------------------------------------------
# Reachability

def ordered_pairs(tb) -> list:
    return list(permutations(tb.topo.hosts(), 2))


def ping_pairs(tb, pairs, count: int = 2, timeout: float = 20.0) -> dict:
    """Ping every (src, dst) pair in parallel; returns {pair: replies received}."""
    procs = {}
    try:
        for src, dst in pairs:
            argv = ["ping", "-n", "-c", str(count), "-i", "0.2", "-W", "2", tb.topo.ip_of(dst)]
            procs[(src, dst)] = tb.host(src).popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                                   text=True)
        return {pair: _received(proc.communicate(timeout=timeout)[0]) for pair, proc in procs.items()}
    finally:
        for proc in procs.values():
            stop_process(proc)


def _received(output: str) -> int:
    m = re.search(r"(\d+) received", output)
    return int(m.group(1)) if m else 0


def assert_all_pairs_reach(tb, count: int = 2, strict: bool = False) -> None:
    """Every ordered pair gets at least one reply (strict: every reply)."""
    got = ping_pairs(tb, ordered_pairs(tb), count)
    need = count if strict else 1
    missing = {pair: n for pair, n in got.items() if n < need}
    assert not missing, f"pairs without {'every' if strict else 'a'} reply: {missing}"


class PingStreams:
    """One `ping -D` every PING_INTERVAL per unordered host pair, for outage measurements."""

    REPLY = re.compile(rb"^\[(\d+\.\d+)\] \d+ bytes from [\d.]+: icmp_seq=(\d+)")

    def __init__(self, tb):
        self.tb = tb
        hosts = tb.topo.hosts()
        self.pairs = [(a, b) for i, a in enumerate(hosts) for b in hosts[i + 1:]]
        self.procs: dict = {}
        self.buffers: dict = {}
        self.replies: dict = {pair: [] for pair in self.pairs}

    def __enter__(self) -> "PingStreams":
        try:
            for a, b in self.pairs:
                argv = ["ping", "-n", "-D", "-i", str(PING_INTERVAL), "-W", "1", self.tb.topo.ip_of(b)]
                proc = self.tb.host(a).popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
                self.procs[(a, b)], self.buffers[(a, b)] = proc, b""
                self.tb.manifest.pid(proc.pid, f"test ping {a}->{b}")
            wait_until(lambda: all(self.latest(p) for p in self.pairs), 10, "a reply on every ping stream")
        except BaseException:
            self.stop()
            raise
        return self

    def latest(self, pair) -> float | None:
        """Time of the newest reply of `pair` so far (reads what ping printed, never waits)."""
        fd = self.procs[pair].stdout.fileno()
        while select.select([fd], [], [], 0)[0]:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            self._take(pair, chunk)
        return self.replies[pair][-1] if self.replies[pair] else None

    def _take(self, pair, chunk: bytes) -> None:
        *lines, self.buffers[pair] = (self.buffers[pair] + chunk).split(b"\n")
        self.replies[pair] += [float(m.group(1)) for line in lines if (m := self.REPLY.match(line))]

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        for pair, proc in self.procs.items():
            stop_process(proc, signal.SIGINT, 5.0)
            self._take(pair, proc.stdout.read() + b"\n")
            proc.stdout.close()

    def __exit__(self, *exc) -> None:
        self.stop()

    def outages(self, failure: float, converged: float) -> dict:
        """{pair: seconds from the failure (wall clock) to the first reply ending the pair's
        outage}: a gap of more than 2.5 ping intervals that began before the controller had
        converged (`converged`, wall clock) and ended after the failure; 0 without one."""
        out = {}
        for pair, times in self.replies.items():
            assert times and times[-1] > converged, f"{pair}: no reply after the failure"
            gaps = [b for a, b in zip(times, times[1:])
                    if b - a > 2.5 * PING_INTERVAL and b > failure and a < converged]
            out[pair] = max(gaps) - failure if gaps else 0.0
        return out


# ---------------------------------------------------------------------------------------------
# Routing events

@dataclass
class Change:
    """A failure as the controller saw it: detection and reprogramming, in seconds."""

    detection: float
    reprogramming: float
    reprogrammed: list


def routing_change(tb, since: float, subject: str, detail: str, timeout: float = 10.0) -> Change:
    """Wait (bounded) until the controller detected `subject` `detail` after `since`
    (time.monotonic()) and converged; measure detection and reprogramming from its events (a
    view change logs its detections, then its reprogrammings)."""
    def detected():
        return next((i for i, e in enumerate(list(tb.routing.events)) if e.time >= since and
                     e.kind == "detected" and e.subject == subject and e.detail == detail), None)
    first = wait_until(lambda: detected() is not None, timeout, f"the controller to detect {subject} {detail}")
    tb.wait_converged(timeout)
    events = list(tb.routing.events)[detected():]
    rest = list(dropwhile(lambda e: e.kind == "detected", events))
    done = list(takewhile(lambda e: e.kind == "reprogrammed", rest))
    assert first and done, f"no switch was reprogrammed after {subject} {detail}"
    return Change(events[0].time - since, done[-1].time - events[0].time, sorted({e.subject for e in done}))


def measured_failover(tb, report, what: str, inject, subject: str, detail: str) -> Change:
    """Inject a failure under continuous pings; check every pair is back within detection plus
    reprogramming (plus RECOVERY_SLACK) and that both are bounded; report the figures."""
    with PingStreams(tb) as pings:
        wall, mono = time.time(), time.monotonic()
        inject()
        change = routing_change(tb, mono, subject, detail)
        wait_until(lambda: all((pings.latest(p) or 0) > time.time() - 0.2 for p in pings.pairs), 10,
                   "every ping stream to answer again")
    outages = pings.outages(wall, wall + change.detection + change.reprogramming)
    worst = max(outages.values())
    interrupted = sorted(f"{a}-{b}" for (a, b), t in outages.items() if t > 0)
    report(f"{what}: detection {change.detection * 1000:.0f} ms, reprogramming "
           f"{change.reprogramming * 1000:.1f} ms ({', '.join(change.reprogrammed)}), every pair back "
           f"{worst * 1000:.0f} ms after the failure; interrupted pairs: {', '.join(interrupted) or 'none'}")
    assert change.detection < DETECTION_BOUND
    assert change.reprogramming < REPROGRAM_BOUND
    assert worst <= change.detection + change.reprogramming + RECOVERY_SLACK, outages
    return change


# ---------------------------------------------------------------------------------------------
# Spreading of flows over the spines

SENDER = """
import socket, sys, time
dst, dport, base, flows, per_flow, size = sys.argv[1], *map(int, sys.argv[2:])
for sport in range(base, base + flows):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("", sport))
        for _ in range(per_flow):
            s.sendto(bytes(size), (dst, dport))
            time.sleep(0.0005)
"""
FLOWS, PER_FLOW, PAYLOAD, BASE_SPORT, DPORT = 64, 5, 1000, 20000, 9999
FRAME = 14 + 20 + 8 + PAYLOAD


def uplink_rx_bytes(tb, leaf: str) -> dict:
    """Bytes each spine received on its port from `leaf`."""
    out = {}
    for spine in [s for s in tb.topo.spines() if tb.switch(s).alive]:
        ports = tb.switch(spine).stats()["ports"]
        out[spine] = ports[str(tb.topo.port_of(spine, leaf))]["rx_bytes"]
    return out


def udp_spread(tb, src: str = "h1", dst: str = "h3") -> tuple[dict, dict]:
    """Send FLOWS UDP flows (distinct source ports) from `src` to `dst`; returns (packets per
    spine counted on the spines' ports from `src`'s leaf, packets per spine predicted)."""
    src_ip, dst_ip, leaf = tb.topo.ip_of(src), tb.topo.ip_of(dst), tb.topo.leaf_of(src)
    predicted = {s: 0 for s in tb.topo.spines()}
    for sport in range(BASE_SPORT, BASE_SPORT + FLOWS):
        predicted[path_spine(tb.topo, src_ip, dst_ip, 17, sport, DPORT, view=tb.routing.view)] += PER_FLOW
    before = uplink_rx_bytes(tb, leaf)
    argv = [sys.executable, "-c", SENDER, dst_ip, str(DPORT), str(BASE_SPORT), str(FLOWS), str(PER_FLOW), str(PAYLOAD)]
    proc = tb.host(src).popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        assert proc.wait(timeout=20) == 0, proc.stderr.read()
    finally:
        stop_process(proc)
        proc.stderr.close()

    def counted():
        now = uplink_rx_bytes(tb, leaf)
        got = {s: (now[s] - before[s]) // FRAME for s in now}
        return got if sum(got.values()) >= FLOWS * PER_FLOW else None
    return wait_until(counted, 10, "the spines to count the UDP flows"), predicted


def assert_spread(measured: dict, predicted: dict) -> None:
    total = FLOWS * PER_FLOW
    for spine, n in measured.items():
        assert n >= 0.2 * total, f"{spine} carried {n} of {total} packets: flows are not spread"
        assert abs(n - predicted[spine]) <= max(3, 0.03 * total), (measured, predicted)


# ---------------------------------------------------------------------------------------------
# The tests

def test_all_pairs_reach_each_other_and_flows_spread_over_both_spines(results, report):
    with fabric(results) as tb:
        assert_all_pairs_reach(tb)
        measured, predicted = udp_spread(tb)
        report(f"{FLOWS} UDP flows x {PER_FLOW} packets h1->h3: per spine {measured} "
               f"(path_spine predicts {predicted})")
        assert_spread(measured, predicted)


def test_spine_crash_then_restart(results, report):
    """A crashed spine is routed around within detection + reprogramming; once restarted it is
    reprogrammed and carries its share of the flows again."""
    with fabric(results) as tb:
        assert_all_pairs_reach(tb)
        measured_failover(tb, report, "spine s1 crash", lambda: tb.crash_switch("s1"), "s1", "switch down")
        assert_all_pairs_reach(tb, strict=True)
        measured, _ = udp_spread(tb)
        assert measured["s2"] >= FLOWS * PER_FLOW and tb.routing.view.down_switches == {"s1"}

        restarted = time.monotonic()
        tb.restart_switch("s1")
        change = routing_change(tb, restarted, "s1", "switch up")
        wait_until(lambda: not tb.routing.view.down_links, 10, "the links of s1 to come back")
        tb.wait_converged()
        programmed = {e.subject for e in list(tb.routing.events) if e.time >= restarted and e.kind == "reprogrammed"}
        assert {"s1", "l1", "l2", "l3"} <= programmed, programmed
        measured, predicted = udp_spread(tb)
        report(f"s1 restart: seen up {change.detection * 1000:.0f} ms after the restart call; "
               f"then per spine {measured} (predicted {predicted})")
        assert measured["s1"] > 0
        assert_spread(measured, predicted)
        assert_all_pairs_reach(tb, strict=True)


def test_link_failure(results, report):
    with fabric(results) as tb:
        assert_all_pairs_reach(tb)
        change = measured_failover(tb, report, "link l1-s1 down", lambda: tb.link_down("l1-s1"),
                                   "l1-s1", "link down")
        assert "l1" in change.reprogrammed
        assert_all_pairs_reach(tb, strict=True)
        measured, _ = udp_spread(tb)
        assert measured["s2"] >= FLOWS * PER_FLOW, "l1 no longer sends through s1"


def test_link_repair(results):
    with fabric(results) as tb:
        failed = time.monotonic()
        tb.link_down("l1-s1")
        routing_change(tb, failed, "l1-s1", "link down")
        rounds = tb.monitor.round_no + 40         # 40 hellos to s1 on the down port: > its ring
        wait_until(lambda: tb.monitor.round_no >= rounds, 10, "40 monitor rounds with the link down")
        repaired = time.monotonic()
        tb.link_up("l1-s1")
        routing_change(tb, repaired, "l1-s1", "link up", timeout=5.0)
        measured, predicted = udp_spread(tb)
        assert_spread(measured, predicted)
        assert_all_pairs_reach(tb, strict=True)


def test_teardown_after_an_exception(results):
    """An exception inside the block: everything is removed all the same, and provenance
    records how the run ended."""
    config = RunConfig(name="fabric-exception")
    with pytest.raises(RuntimeError, match="inside the block"):
        with _Testbed(config, results_dir=results) as tb:
            fp = footprint(tb)
            raise RuntimeError("inside the block")
    assert_torn_down(fp, status="RuntimeError: inside the block")


def test_teardown_after_an_exception_with_traffic_running(results):
    config = RunConfig(name="fabric-exception-traffic")
    fp = None
    try:
        with pytest.raises(RuntimeError, match="mid-workload"):
            with _Testbed(config, results_dir=results) as tb:
                fp = footprint(tb)
                WorkloadRun(tb, default_flows(tb.topo, probes=1, tcps=1), duration=30).start()
                raise RuntimeError("mid-workload")
        assert_torn_down(fp, status="RuntimeError: mid-workload")
    finally:
        for pid, what in survivors(fp.run_dir) if fp else []:      # what the bug leaves: ours, by pid and start time
            if what.startswith("traffic"):
                os.kill(pid, signal.SIGKILL)


# ---------------------------------------------------------------------------------------------
# python -m testbed.cleanup

def veth_pair(a: str, b: str) -> None:
    subprocess.run(["ip", "link", "add", a, "type", "veth", "peer", "name", b], check=True, capture_output=True)


def exists(intf: str) -> bool:
    return os.path.exists(f"/sys/class/net/{intf}")


def sleeper() -> subprocess.Popen:
    return subprocess.Popen(["sleep", "300"], start_new_session=True)


def write_manifest(run_dir, status: str, pids: list, interfaces: list, dirs: list) -> str:
    os.makedirs(run_dir)
    path = os.path.join(run_dir, "manifest.json")
    with open(path, "w") as f:
        json.dump({"run_id": os.path.basename(run_dir), "status": status, "pids": pids,
                   "interfaces": interfaces, "dirs": dirs}, f)
    return path


def cleanup(results_dir: str, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "testbed.cleanup", "--results", results_dir, *extra],
                          cwd=REPO, capture_output=True, text=True, timeout=60)


def test_cleanup_removes_exactly_what_a_running_manifest_lists(tmp_path):
    """A "running" manifest lists a sleep process, a veth pair (one end) and a directory, and a
    pid whose recorded start time is not that of the process now holding it (a reused pid).
    The cleanup kills, deletes and removes exactly those three; the impostor, an unlisted veth
    pair and the resources of a "clean" manifest stay."""
    tag = f"tbc{os.getpid() % 100000}"
    results_dir, leftover_dir = str(tmp_path / "results"), tmp_path / "leftover"
    leftover_dir.mkdir()
    procs = {name: sleeper() for name in ("listed", "impostor", "finished_run")}
    try:
        veth_pair(f"{tag}a", f"{tag}b")
        veth_pair(f"{tag}x", f"{tag}y")
        start = {name: process_start_time(p.pid) for name, p in procs.items()}
        running = write_manifest(os.path.join(results_dir, "run-running"), "running",
                                 [[procs["listed"].pid, start["listed"], "leftover"],
                                  [procs["impostor"].pid, start["impostor"] + 1, "a reused pid"]],
                                 [f"{tag}a"], [str(leftover_dir)])
        finished = write_manifest(os.path.join(results_dir, "run-finished"), "clean",
                                  [[procs["finished_run"].pid, start["finished_run"], "done"]], [f"{tag}x"], [])
        with open(finished) as f:
            finished_before = f.read()

        dry = cleanup(results_dir, "--dry-run")
        assert dry.returncode == 0, dry.stderr
        planned = [line.split(": ", 1)[1] for line in dry.stdout.splitlines() if ": " in line]
        assert sorted(planned) == sorted([f"kill {procs['listed'].pid} (leftover)", f"delete interface {tag}a",
                                          f"remove {leftover_dir}"]), dry.stdout
        assert all(p.poll() is None for p in procs.values()) and exists(f"{tag}a") and leftover_dir.exists()

        done = cleanup(results_dir)
        assert done.returncode == 0, done.stderr
        assert procs["listed"].wait(timeout=10) == -signal.SIGKILL
        assert procs["impostor"].poll() is None and procs["finished_run"].poll() is None
        assert not exists(f"{tag}a") and not exists(f"{tag}b")
        assert exists(f"{tag}x") and exists(f"{tag}y")
        assert not leftover_dir.exists()
        with open(running) as f:
            assert json.load(f)["status"] == "cleaned"
        with open(finished) as f:
            assert f.read() == finished_before
        assert "removed 3 leftovers from 2 runs" in done.stdout
    finally:
        for proc in procs.values():
            stop_process(proc)
        for intf in (f"{tag}a", f"{tag}x"):
            if exists(intf):
                subprocess.run(["ip", "link", "del", intf], capture_output=True)
