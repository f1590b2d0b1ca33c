"""Traffic tools: formats and distributions (no root), loopback runs, and runs across a veth
pair between two test namespaces (root)."""
import os
import random
import signal
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import pytest

from waiting import wait_until

from testbed.capture import NetnsExec, popen_in, run_in, stop_process
from testbed.errors import TestbedError
from testbed.failures import Netem, NetemUnavailableError, link_down, netem
from testbed.traffic import TOOLS, read_log, tool_argv, wait_ready
from testbed.traffic.probe import PROBE_HEADER, PROBE_HEADER_LEN, decode_probe, encode_probe
from testbed.traffic.shortflows import parse_distribution
from testbed.traffic.tcpflow import Pattern

LOOPBACK = partial(subprocess.Popen, start_new_session=True)  # a target in the root namespace


@pytest.fixture
def workdir():
    """A temporary directory removed after the test (pytest's tmp_path keeps old runs)."""
    with tempfile.TemporaryDirectory(prefix="tb-test-") as path:
        yield Path(path)


@pytest.fixture
def tools():
    """Start tools in a target and wait until ready; every process is stopped at teardown."""
    started = []

    def start(target, tool, mode, **options):
        proc = popen_in(target, tool_argv(tool, mode, **options))
        started.append(proc)
        return proc, wait_ready(proc, timeout=10)

    yield start
    for proc in started:
        stop_process(proc, signal.SIGTERM, 5.0)


def finish(proc, timeout=20):
    """Wait (bounded) for a tool to exit; return its exit status."""
    proc.communicate(timeout=timeout)
    return proc.returncode


def rows_so_far(path):
    try:
        with open(path) as f:
            return sum(1 for line in f if not line.startswith("#")) - 1
    except FileNotFoundError:
        return 0


def last_logged_seq(path):
    """The seq of the last complete row of a probe receiver log (None if there is none)."""
    with open(path) as f:
        lines = [line for line in f if line.endswith("\n") and line[:1].isdigit()]
    return int(lines[-1].split(",")[1]) if lines else None


# ---------------------------------------------------------------------------------------------
# No root

def test_probe_header_layout():
    assert PROBE_HEADER == "!4sBBHIIQQ" and PROBE_HEADER_LEN == 32
    payload = encode_probe(flow=7, seq=42, send_ns=123456789, size=100, echo_ns=5, flags=1)
    assert len(payload) == 100 and payload[:4] == b"TBPR" and payload[32:] == bytes(68)
    probe = decode_probe(payload)
    assert (probe.flow, probe.seq, probe.send_ns, probe.echo_ns, probe.is_echo) == \
        (7, 42, 123456789, 5, True)
    assert decode_probe(b"x" * 40) is None and decode_probe(payload[:31]) is None


def test_flow_size_distributions():
    web = parse_distribution("websearch")
    assert web.quantile(0.0) == 6 * 1460 and web.quantile(1.0) == 20000 * 1460
    assert 1.5e6 < web.mean() < 1.8e6
    mining = parse_distribution("datamining", scale=0.5, max_bytes=10_000)
    sizes = [mining.sample(random.Random(3)) for _ in range(5)]
    assert sizes == [mining.sample(random.Random(3)) for _ in range(5)]
    rng = random.Random(1)
    samples = [mining.sample(rng) for _ in range(2000)]
    assert max(samples) <= 10_000 and min(samples) >= 1
    assert 0.4 < sum(s == 730 for s in samples) / len(samples) < 0.6  # half are 1 packet
    assert parse_distribution("fixed:1234").sample(rng) == 1234
    with pytest.raises(ValueError, match="unknown flow-size distribution"):
        parse_distribution("pareto")


def test_pattern_detects_corruption():
    pattern = Pattern(5)
    chunk = bytes(pattern.slice(70000, 1000))
    assert pattern.first_mismatch(70000, chunk) is None
    assert pattern.first_mismatch(70001, chunk) is not None
    bad = bytearray(chunk)
    bad[10] ^= 0xFF
    assert pattern.first_mismatch(70000, bytes(bad)) == 70010


def test_tool_argv():
    argv = tool_argv("probe", "send", dst="10.0.0.1", dport=9, echo=True, count=None,
                     echo_wait=0.5)
    assert argv[1:] == ["-m", "testbed.traffic.probe", "send", "--dst", "10.0.0.1",
                        "--dport", "9", "--echo", "--echo-wait", "0.5"]
    with pytest.raises(TestbedError, match="unknown traffic tool"):
        tool_argv("iperf", "client")


@pytest.mark.parametrize("tool", sorted(TOOLS))
def test_help(tool):
    for mode in ([], ["send" if tool == "probe" else "client"]):
        done = subprocess.run([sys.executable, "-m", TOOLS[tool], *mode, "--help"],
                              capture_output=True, text=True, timeout=20)
        assert done.returncode == 0 and "usage:" in done.stdout


def test_bad_arguments_exit_2():
    done = subprocess.run(tool_argv("probe", "send", dst="127.0.0.1", dport=9, size=8),
                          capture_output=True, text=True, timeout=20)
    assert done.returncode == 2 and "--size" in done.stderr


def test_probe_on_loopback_and_sigterm_flushes(tools, workdir):
    recv_log, send_log = workdir / "recv.csv", workdir / "send.csv"
    receiver, ready = tools(LOOPBACK, "probe", "recv", bind="127.0.0.1", port=0, echo=True,
                            log=recv_log, flush_interval=60)
    sender, _ = tools(LOOPBACK, "probe", "send", dst="127.0.0.1", dport=ready["port"],
                      rate=2000, count=100, flow=3, echo=True, log=send_log)
    assert finish(sender) == 0
    assert read_log(send_log).summary["replies"] == 100  # so the receiver handled all 100
    receiver.send_signal(signal.SIGTERM)
    assert finish(receiver) == 0
    log = read_log(recv_log)
    assert log.summary["stopped"] is True and log.summary["received"] == 100
    assert log.column("seq") == list(range(100)) and set(log.column("flow")) == {3}
    assert log.meta["tool"] == "probe" and log.fields == ["flow", "seq", "send_ns", "recv_ns",
                                                          "src", "len"]


def test_receiver_bind_failure_exits_3(tools):
    _, ready = tools(LOOPBACK, "probe", "recv", bind="127.0.0.1", port=0)
    done = subprocess.run(tool_argv("probe", "recv", bind="127.0.0.1", port=ready["port"],
                                    duration=1), capture_output=True, text=True, timeout=20)
    assert done.returncode == 3 and "cannot bind" in done.stderr


def test_tcpflow_reverse_on_loopback(tools, workdir):
    """--reverse: the server streams, the client verifies every byte and the report's count;
    --sport fixes the client's source port (the server sees it as the peer's port)."""
    server_log, client_log = workdir / "server.csv", workdir / "client.csv"
    server, ready = tools(LOOPBACK, "tcpflow", "server", bind="127.0.0.1", port=0, conns=1,
                          reverse=True, rate=100, log=server_log)
    client, _ = tools(LOOPBACK, "tcpflow", "client", dst="127.0.0.1", port=ready["port"],
                      sport=47311, duration=0.5, flow=11, reverse=True, log=client_log)
    assert finish(client) == 0 and finish(server) == 0
    got, sent = read_log(client_log), read_log(server_log)
    assert got.summary["survived"] is True and got.summary["reverse"] is True
    assert got.summary["bytes_sent"] == 0 and got.summary["bytes_received"] > 2_000_000
    assert got.summary["report"] == [0, got.summary["bytes_received"]]
    assert sent.summary["bytes"] == {"11": got.summary["bytes_received"]} and sent.summary["reverse"]
    received = [r for r in got.rows if r["event"] == "interval"]
    assert sum(r["interval_bytes"] for r in received) == got.summary["bytes_received"]
    assert [r["detail"] for r in sent.rows if r["event"] == "accepted"] == ["127.0.0.1:47311"]
    assert 50e6 < got.summary["bytes_received"] * 8 / 0.5 < 150e6  # the server's 100 Mbit/s


def test_tcpflow_direction_mismatch_fails(tools, workdir):
    server_log, client_log = workdir / "server.csv", workdir / "client.csv"
    server, ready = tools(LOOPBACK, "tcpflow", "server", bind="127.0.0.1", port=0, conns=1,
                          reverse=True, log=server_log)
    client, _ = tools(LOOPBACK, "tcpflow", "client", dst="127.0.0.1", port=ready["port"],
                      duration=0.3, rate=10, finish_timeout=2, log=client_log)
    assert finish(client) == 1 and finish(server) == 1
    assert read_log(client_log).summary["survived"] is False
    assert "bad hello" in read_log(server_log).summary["failed"]["1"]


def test_tcpflow_rate_belongs_to_the_sender():
    for mode, options in (("client", {"dst": "127.0.0.1", "reverse": True}), ("server", {})):
        done = subprocess.run(tool_argv("tcpflow", mode, port=9, rate=5, **options),
                              capture_output=True, text=True, timeout=20)
        assert done.returncode == 2 and "--rate" in done.stderr


# ---------------------------------------------------------------------------------------------
# Root: two namespaces joined by a veth pair

@dataclass
class Pair:
    a: NetnsExec
    b: NetnsExec
    intf_a: str
    intf_b: str
    ip_a: str = "10.77.0.1"
    ip_b: str = "10.77.0.2"


@contextmanager
def veth_pair():
    """Namespaces ``tb<pid>ta``/``tb<pid>tb`` joined by a veth pair; deleted on exit."""
    tag = f"tb{os.getpid() % 10000}t"
    with NetnsExec.create(f"{tag}a") as a, NetnsExec.create(f"{tag}b") as b:
        pair = Pair(a, b, f"{tag}a0", f"{tag}b0")
        subprocess.run(["ip", "link", "add", pair.intf_a, "netns", a.name, "type", "veth",
                        "peer", "name", pair.intf_b, "netns", b.name], check=True)
        for ns, intf, ip in ((a, pair.intf_a, pair.ip_a), (b, pair.intf_b, pair.ip_b)):
            run_in(ns, ["ip", "addr", "add", f"{ip}/24", "dev", intf])
            run_in(ns, ["ip", "link", "set", intf, "up"])
        yield pair


@pytest.fixture
def pair():
    with veth_pair() as p:
        yield p


def run_probe(tools, pair, workdir, recv_options, **send_options):
    """Receiver in b, sender in a; returns (sender, receiver, send log, recv log)."""
    recv_log, send_log = workdir / "recv.csv", workdir / "send.csv"
    receiver, _ = tools(pair.b, "probe", "recv", port=9000, log=recv_log,
                        echo=send_options.get("echo", False), **recv_options)
    sender, _ = tools(pair.a, "probe", "send", dst=pair.ip_b, dport=9000, log=send_log,
                      flush_interval=0.05, **send_options)
    return sender, receiver, send_log, recv_log


@pytest.mark.root
def test_probe_clean_link_has_no_loss(tools, pair, workdir):
    sender, receiver, send_log, recv_log = run_probe(tools, pair, workdir, {"count": 300},
                                                     rate=2000, count=300, flow=9)
    assert finish(sender) == 0 and finish(receiver) == 0
    sent = read_log(send_log)
    assert sent.summary["sent"] == 300 and sent.summary["send_errors"] == 0
    rows = read_log(recv_log).rows
    assert sorted(r["seq"] for r in rows) == list(range(300))
    latencies = [r["recv_ns"] - r["send_ns"] for r in rows]
    assert all(0 < lat < 1e9 for lat in latencies)
    assert {r["src"].split(":")[0] for r in rows} == {pair.ip_a}


@pytest.mark.root
def test_probe_echo_measures_rtt(tools, pair, workdir):
    sender, _receiver, send_log, _recv_log = run_probe(tools, pair, workdir, {}, rate=1000,
                                                       count=100, echo=True, size=200)
    assert finish(sender) == 0
    log = read_log(send_log)
    replies = [r for r in log.rows if r["event"] == "reply"]
    assert log.summary["replies"] == 100 and len(replies) == 100
    assert all(r["send_ns"] <= r["echo_ns"] <= r["recv_ns"] for r in replies)


def gaps(seqs, count):
    """Runs of consecutive missing sequence numbers, as (first, last) pairs."""
    runs = []
    for seq in sorted(set(range(count)) - set(seqs)):
        if runs and runs[-1][1] == seq - 1:
            runs[-1][1] = seq
        else:
            runs.append([seq, seq])
    return [tuple(r) for r in runs]


@pytest.mark.root
def test_probe_shows_gap_while_link_is_down(tools, pair, workdir):
    # After `ip link set up` the kernel may re-enable the veth's queue only at its next
    # link-watch run (rate-limited to 1/s per device), so outages can outlast the down period.
    count = 2500
    sender, receiver, send_log, recv_log = run_probe(
        tools, pair, workdir, {"flush_interval": 0.05}, rate=1000, count=count)
    wait_until(lambda: rows_so_far(recv_log) >= 100)
    sent_before = rows_so_far(send_log)
    link_up_again = link_down(pair.b, pair.intf_b)
    try:
        wait_until(lambda: rows_so_far(send_log) >= sent_before + 150)
    finally:
        link_up_again()
    assert finish(sender) == 0
    wait_until(lambda: last_logged_seq(recv_log) == count - 1, timeout=5)
    receiver.send_signal(signal.SIGTERM)
    assert finish(receiver) == 0
    seqs = [r["seq"] for r in read_log(recv_log).rows]
    runs = gaps(seqs, count)
    assert runs and runs[0][0] >= 100, "no loss before the link went down"
    assert max(last - first + 1 for first, last in runs) >= 100, "the down link loses probes"
    assert set(range(count - 100, count)) <= set(seqs), "traffic resumes after the link is up"


@pytest.mark.root
def test_probe_loss_visible_with_netem(tools, pair, workdir):
    try:
        clear = netem(pair.a, pair.intf_a, Netem(loss=30))
    except NetemUnavailableError:
        pytest.skip("this kernel has no netem qdisc")
    try:
        sender, receiver, _send_log, recv_log = run_probe(
            tools, pair, workdir, {"idle_timeout": 1.0}, rate=4000, count=1000)
        assert finish(sender) == 0 and finish(receiver) == 0
    finally:
        clear()
    assert 500 < len(read_log(recv_log).rows) < 900


@pytest.mark.root
def test_tcpflow_survives_and_reports_bytes(tools, pair, workdir):
    server_log, client_log = workdir / "server.csv", workdir / "client.csv"
    server, _ = tools(pair.b, "tcpflow", "server", port=5001, conns=1, log=server_log)
    client, _ = tools(pair.a, "tcpflow", "client", dst=pair.ip_b, port=5001, duration=0.6,
                      flow=4, rate=200, log=client_log)
    assert finish(client) == 0 and finish(server) == 0
    sent, received = read_log(client_log), read_log(server_log)
    assert sent.summary["survived"] is True and sent.summary["bytes_sent"] > 1_000_000
    assert received.summary["bytes"] == {"4": sent.summary["bytes_sent"]}
    intervals = [r for r in received.rows if r["event"] == "interval"]
    assert len(intervals) >= 4
    assert sum(r["interval_bytes"] for r in intervals) == sent.summary["bytes_sent"]
    assert 100e6 < sent.summary["bytes_sent"] * 8 / 0.6 < 250e6  # the 200 Mbit/s limit


@pytest.mark.root
def test_tcpflow_reverse_survives_and_reports_bytes(tools, pair, workdir):
    server_log, client_log = workdir / "server.csv", workdir / "client.csv"
    server, _ = tools(pair.b, "tcpflow", "server", port=5003, conns=1, reverse=True, rate=200,
                      log=server_log)
    client, _ = tools(pair.a, "tcpflow", "client", dst=pair.ip_b, port=5003, duration=0.6,
                      flow=5, reverse=True, log=client_log)
    assert finish(client) == 0 and finish(server) == 0
    got, sent = read_log(client_log), read_log(server_log)
    assert got.summary["survived"] is True and got.summary["bytes_received"] > 1_000_000
    assert sent.summary["bytes"] == {"5": got.summary["bytes_received"]}
    intervals = [r for r in got.rows if r["event"] == "interval"]
    assert len(intervals) >= 4
    assert sum(r["interval_bytes"] for r in intervals) == got.summary["bytes_received"]
    assert 100e6 < got.summary["bytes_received"] * 8 / 0.6 < 250e6  # the 200 Mbit/s limit


@pytest.mark.root
def test_tcpflow_reports_a_reset(tools, pair, workdir):
    server_log, client_log = workdir / "server.csv", workdir / "client.csv"
    server, _ = tools(pair.b, "tcpflow", "server", port=5002, log=server_log,
                      flush_interval=0.05)
    client, _ = tools(pair.a, "tcpflow", "client", dst=pair.ip_b, port=5002, duration=5,
                      rate=50, log=client_log)
    wait_until(lambda: rows_so_far(server_log) >= 3)  # accepted and data flowing
    server.send_signal(signal.SIGKILL)  # dies with unread data: the kernel resets the flow
    assert finish(client) == 1
    log = read_log(client_log)
    assert log.summary["survived"] is False
    assert any(r["event"] in ("reset", "error") for r in log.rows)


@pytest.mark.root
def test_shortflows_complete(tools, pair, workdir):
    server_log, client_log = workdir / "server.csv", workdir / "client.csv"
    server, _ = tools(pair.b, "shortflows", "server", port=6001, log=server_log)
    client, _ = tools(pair.a, "shortflows", "client", dst=pair.ip_b, port=6001, rate=200,
                      count=40, dist="websearch", scale=0.05, seed=7, log=client_log)
    assert finish(client) == 0
    flows = read_log(client_log)
    assert flows.summary["completed"] == 40 and len(flows.rows) == 40
    assert all(r["completed"] == 1 and r["bytes"] == r["size"] for r in flows.rows)
    assert all(r["end_ns"] > r["start_ns"] for r in flows.rows)
    wait_until(lambda: rows_so_far(server_log) >= 40, timeout=5)
    server.send_signal(signal.SIGTERM)
    assert finish(server) == 0
    assert read_log(server_log).summary["completed"] == 40
