"""Capture as a managed resource: command runners and naming (no root), tcpdump in test
namespaces read back with scapy (root)."""
import os
import subprocess
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from testbed.capture import (
    Capture, CaptureError, CaptureSet, CommandError, NetnsExec, capture_path, popen_in, run_in,
    stop_process,
)
from testbed.errors import ConfigError
from testbed.traffic import tool_argv, wait_ready
from testbed.traffic.probe import decode_probe


@pytest.fixture
def workdir():
    """A temporary directory removed after the test (pytest's tmp_path keeps old runs)."""
    with tempfile.TemporaryDirectory(prefix="tb-test-") as path:
        yield Path(path)


# ---------------------------------------------------------------------------------------------
# No root

def test_capture_names_are_deterministic(workdir):
    assert capture_path(workdir, "h1", "h1-eth0") == workdir / "h1_h1-eth0.pcap"
    capture = Capture(lambda argv, **kw: None, "s1-eth2", workdir, node="s1", bpf="udp",
                      snaplen=128)
    assert capture.path == workdir / "s1_s1-eth2.pcap"
    assert capture.argv() == ["tcpdump", "-i", "s1-eth2", "-U", "--immediate-mode", "-w",
                              str(capture.path), "-Z", "root", "-n", "-s", "128", "udp"]


def test_capture_needs_a_node_name_for_plain_callables(workdir):
    with pytest.raises(ConfigError, match="give node="):
        Capture(lambda argv, **kw: None, "eth0", workdir)


def test_capture_set_rejects_duplicates(workdir):
    captures = CaptureSet(workdir)
    captures.add(NetnsExec("x1"), "x1-eth0")
    with pytest.raises(ConfigError, match="already in this set"):
        captures.add(NetnsExec("x1"), "x1-eth0")
    assert captures.paths == [workdir / "x1_x1-eth0.pcap"]


def test_runners_validate_their_inputs():
    with pytest.raises(ConfigError, match="invalid namespace name"):
        NetnsExec("bad name; rm")
    with pytest.raises(ConfigError, match="has no popen"):
        popen_in(42, ["true"])


def test_run_in_reports_failures():
    root = subprocess.Popen  # a popen-like callable running in the current namespace
    assert run_in(root, ["echo", "hi"]) == "hi\n"
    with pytest.raises(CommandError) as info:
        run_in(root, ["sh", "-c", "echo oops >&2; exit 3"])
    assert info.value.returncode == 3 and "oops" in str(info.value)


# ---------------------------------------------------------------------------------------------
# Root

@dataclass
class Pair:
    a: NetnsExec
    b: NetnsExec
    intf_a: str
    intf_b: str
    ip_b: str = "10.78.0.2"


@contextmanager
def veth_pair():
    """Namespaces ``tb<pid>ca``/``tb<pid>cb`` joined by a veth pair; deleted on exit."""
    tag = f"tb{os.getpid() % 10000}c"
    with NetnsExec.create(f"{tag}a") as a, NetnsExec.create(f"{tag}b") as b:
        pair = Pair(a, b, f"{tag}a0", f"{tag}b0")
        subprocess.run(["ip", "link", "add", pair.intf_a, "netns", a.name, "type", "veth",
                        "peer", "name", pair.intf_b, "netns", b.name], check=True)
        for ns, intf, ip in ((a, pair.intf_a, "10.78.0.1"), (b, pair.intf_b, pair.ip_b)):
            run_in(ns, ["ip", "addr", "add", f"{ip}/24", "dev", intf])
            run_in(ns, ["ip", "link", "set", intf, "up"])
        yield pair


@pytest.fixture
def pair():
    with veth_pair() as p:
        yield p


def send_probes(pair, count, port=9100):
    """Send `count` probes from a to a receiver in b; return when b has received them all."""
    receiver = popen_in(pair.b, tool_argv("probe", "recv", port=port, count=count,
                                          duration=20, log=os.devnull))
    try:
        wait_ready(receiver)
        sender = popen_in(pair.a, tool_argv("probe", "send", dst=pair.ip_b, dport=port,
                                            rate=2000, count=count, flow=5, log=os.devnull))
        try:
            assert sender.wait(timeout=20) == 0
        finally:
            stop_process(sender)
        assert receiver.wait(timeout=20) == 0
    finally:
        stop_process(receiver)


def probes_in(path, port):
    """Decoded probes (with pcap timestamps in ns) sent to UDP `port`, read with scapy."""
    from scapy.layers.inet import UDP
    from scapy.utils import PcapReader

    found = []
    with PcapReader(str(path)) as reader:
        for packet in reader:
            if UDP in packet and packet[UDP].dport == port:
                probe = decode_probe(bytes(packet[UDP].payload))
                if probe is not None:
                    found.append((probe, int(packet.time * 1_000_000_000)))
    return found


@pytest.mark.root
def test_capture_holds_the_probe_packets(pair, workdir):
    with Capture(pair.b, pair.intf_b, workdir, node="hb", bpf="udp") as capture:
        assert capture.running
        send_probes(pair, 50)
    assert not capture.running and capture.stats["captured"] == 50
    assert capture.path == workdir / f"hb_{pair.intf_b}.pcap"
    probes = probes_in(capture.path, 9100)
    assert [p.seq for p, _ts in probes] == list(range(50))
    assert {p.flow for p, _ts in probes} == {5}
    assert all(0 <= ts - p.send_ns < 1e9 for p, ts in probes)  # one clock for logs and pcaps


@pytest.mark.root
def test_capture_set_on_both_ends(pair, workdir):
    captures = CaptureSet(workdir, bpf="udp port 9100")
    captures.add(pair.a, pair.intf_a, node="ha")
    captures.add(pair.b, pair.intf_b, node="hb")
    with captures:
        assert all(c.running for c in captures.captures)
        send_probes(pair, 20)
    stats = captures.stop()  # idempotent: returns the counters again
    assert [p.name for p in captures.paths] == [f"ha_{pair.intf_a}.pcap", f"hb_{pair.intf_b}.pcap"]
    assert all(s["captured"] == 20 for s in stats.values())
    assert all(len(probes_in(path, 9100)) == 20 for path in captures.paths)


@pytest.mark.root
def test_capture_on_a_missing_interface_fails_cleanly(pair, workdir):
    capture = Capture(pair.a, "nosuchintf0", workdir, node="ha", ready_timeout=5)
    with pytest.raises(CaptureError, match="exited"):
        capture.start()
    assert capture.proc is not None and capture.proc.poll() is not None
    captures = CaptureSet(workdir)
    good = captures.add(pair.a, pair.intf_a, node="ha")
    captures.add(pair.b, "nosuchintf0", node="hb")
    with pytest.raises(CaptureError):
        captures.start()
    assert not good.running, "a failed set start stops the captures that did start"
