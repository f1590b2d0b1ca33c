"""The bundled switch as a process: command line, exit codes, pcaps, logs, raw-socket I/O.

Root tests build their own network namespaces (one for the switch, one for the hosts, joined by
veth pairs), start the switch with SwitchProcess inside the switch namespace, configure it
through its control port and send real frames from raw sockets in the hosts namespace.
"""
from __future__ import annotations

import ctypes
import os
import random
import signal
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from waiting import wait_until

from testbed.capture import NetnsExec, run_in
from testbed.v1model import switchd
from testbed.v1model.pcap import PcapWriter, read_pcap
from testbed.v1model.process import SwitchProcess, SwitchStartError
from testbed.v1model.switchd import SwitchUsageError, parse_command_line

ROOT = Path(__file__).resolve().parents[1]
L3 = ROOT / "benchmarks" / "p4" / "l3.p4"
PROBE_TYPE = 0x88B5

# A small L2 program: exact match on the destination MAC to a port, a multicast group or a drop;
# a register counting frames per ingress port; egress writes the egress port into the probe
# header; a probe of kind 0xEE fails an assert().
LAB_P4 = """
#include <core.p4>
#include <v1model.p4>
header ethernet_t { bit<48> dst; bit<48> src; bit<16> etherType; }
header probe_t { bit<8> kind; bit<8> port; bit<16> seq; }
struct headers_t { ethernet_t eth; probe_t probe; }
struct meta_t { bit<32> count; }

parser P(packet_in pkt, out headers_t h, inout meta_t m, inout standard_metadata_t sm) {
    state start {
        pkt.extract(h.eth);
        transition select(h.eth.etherType) { 0x88b5: parse_probe; default: accept; }
    }
    state parse_probe { pkt.extract(h.probe); transition accept; }
}
control VC(inout headers_t h, inout meta_t m) { apply { } }
control I(inout headers_t h, inout meta_t m, inout standard_metadata_t sm) {
    register<bit<32>>(512) rx_count;
    action forward(bit<9> port) { sm.egress_spec = port; }
    action flood(bit<16> grp) { sm.mcast_grp = grp; }
    action drop() { mark_to_drop(sm); }
    table l2 {
        key = { h.eth.dst: exact; }
        actions = { forward; flood; drop; }
        default_action = drop();
    }
    apply {
        rx_count.read(m.count, (bit<32>) sm.ingress_port);
        rx_count.write((bit<32>) sm.ingress_port, m.count + 1);
        if (h.probe.isValid() && h.probe.kind == 0xEE) { assert(false); }
        l2.apply();
    }
}
control E(inout headers_t h, inout meta_t m, inout standard_metadata_t sm) {
    apply { if (h.probe.isValid()) { h.probe.port = (bit<8>) sm.egress_port; } }
}
control CC(inout headers_t h, inout meta_t m) { apply { } }
control D(packet_out pkt, in headers_t h) { apply { pkt.emit(h.eth); pkt.emit(h.probe); } }
V1Switch(P(), VC(), I(), E(), CC(), D()) main;
"""

LAB_COMMANDS = """\
// unicast by destination MAC, broadcast to a multicast group of ports 2-4
table_add l2 forward 00:00:00:00:00:02 => 2
table_add l2 forward 00:00:00:00:00:03 => 3
table_add l2 flood ff:ff:ff:ff:ff:ff => 1
mc_mgrp_create 1
mc_node_create 0 2 3 4
mc_node_associate 1 0
"""


def mac(n: int) -> bytes:
    return n.to_bytes(6, "big")


def probe(dst: bytes, seq: int, kind: int = 1, src: bytes = mac(1), pad: int = 40) -> bytes:
    return dst + src + PROBE_TYPE.to_bytes(2, "big") + bytes([kind, 0]) + seq.to_bytes(2, "big") + bytes(pad)


@pytest.fixture
def workdir(tmp_path):
    return tmp_path


@pytest.fixture(scope="module")
def lab_program(tmp_path_factory):
    path = tmp_path_factory.mktemp("p4") / "lab.p4"
    path.write_text(LAB_P4)
    return path


# ---------------------------------------------------------------------------------------------
# Command line (no root)

def test_p4_utils_command_line_is_accepted():
    argv = ["-i", "1@s1-eth1", "-i", "2@s1-eth2", "--pcap=/tmp", "--thrift-port", "9091",
            "--nanolog", "ipc:///tmp/bm-1-log.ipc", "--device-id", "1", "prog.p4", "--log-console",
            "--", "--priority-queues", "2", "--cpu-port", "2"]
    opts = parse_command_line(argv)
    assert opts.program == "prog.p4" and opts.interfaces == {1: "s1-eth1", 2: "s1-eth2"}
    assert (opts.pcap_dir, opts.thrift_port, opts.device_id) == ("/tmp", 9091, 1)
    assert opts.log_console and opts.tracing and opts.priority_queues == 2 and opts.cpu_port == 2
    assert any("--nanolog ignored" in w for w in opts.warnings)


def test_pcap_without_a_directory_means_the_current_one():
    assert parse_command_line(["--pcap", "prog.p4"]).pcap_dir == "."
    opts = parse_command_line(["-i", "1@a", "--pcap", "--thrift-port", "1", "prog.p4"])
    assert (opts.pcap_dir, opts.program) == (".", "prog.p4")


def test_log_file_gets_bmv2s_txt_suffix_and_levels_switch_tracing_off():
    opts = parse_command_line(["--log-file", "logs/s1.log", "-L", "info", "p.p4"])
    assert opts.log_path == "logs/s1.log.txt" and not opts.tracing
    assert parse_command_line(["--log-file", "s1.log", "p.p4"]).tracing
    assert not parse_command_line(["p.p4"]).tracing


@pytest.mark.parametrize("argv, message", [
    (["--bogus", "p.p4"], "unrecognized arguments: --bogus"),
    (["-i", "x@eth0", "p.p4"], "-i x@eth0: expected N@IFNAME"),
    (["-i", "1@a", "-i", "1@b", "p.p4"], "port 1 is already attached to a"),
    (["-i", "600@a", "p.p4"], "out of range"),
    (["--pcap", "/nonexistent-dir", "p.p4"], "--pcap /nonexistent-dir: directory does not exist"),
    (["--use-files", "0", "p.p4"], "--use-files is not supported"),
    (["--no-p4"], "--no-p4 is not supported"),
    (["build/basic.json"], "this target runs P4_16 source, not BMv2 JSON"),
    ([], "no program given"),
    (["--log-console", "--log-file", "x", "p.p4"], "not allowed with argument"),
    (["-L", "loud", "p.p4"], "--log-level loud"),
    (["p.p4", "--", "--drop-port", "999"], "--drop-port 999"),
    (["p.p4", "--", "--load-modules", "x.so"], "--load-modules is not supported"),
    (["p.p4", "--", "--rx-ring-frames", "8"], "--rx-ring-frames 8"),
    (["--cpu-port", "0", "p.p4"], "--cpu-port 0"),
])
def test_bad_command_lines_name_the_option(argv, message):
    with pytest.raises(SwitchUsageError, match=None) as info:
        parse_command_line(argv)
    assert message in str(info.value)


def test_bad_option_exits_64_with_usage(capsys):
    assert switchd.main(["--thrift-port", "x", "p.p4"]) == 64
    err = capsys.readouterr().err
    assert "usage: p4sim-switch" in err and "--thrift-port" in err


def test_help_and_version_exit_0(capsys):
    assert switchd.main(["-h"]) == 0
    assert "--thrift-port" in capsys.readouterr().out
    assert switchd.main(["-v"]) == 0
    assert "P4_16 source" in capsys.readouterr().out


def test_bad_program_exits_65_with_the_p4_error(workdir, capsys):
    bad = workdir / "bad.p4"
    bad.write_text("#include <core.p4>\nheader h_t { bit<8> a; }\nstruct s { h_t h }\n")
    assert switchd.main(["--thrift-port", "0", str(bad)]) == 65
    err = capsys.readouterr().err
    assert ":3:18: error: expected ';'" in err
    assert os.path.realpath(err.split(":3:")[0]) == os.path.realpath(bad)   # relative or not


def test_missing_interface_exits_70_naming_it(capsys):
    assert switchd.main(["-i", "1@p4nosuch0", "--thrift-port", "0", str(L3)]) == 70
    assert "interface p4nosuch0: no such interface" in capsys.readouterr().err


def test_control_port_in_use_exits_70_naming_the_address(capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        assert switchd.main(["--thrift-port", str(port), str(L3)]) == 70
    assert f"cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err


def test_ignored_options_warn_on_stderr():
    opts = parse_command_line(["--debugger", "--restore-state", "f", "p.p4", "--", "--grpc-server-addr", "0.0.0.0:1"])
    text = "\n".join(opts.warnings)
    assert "--debugger ignored" in text and "--restore-state ignored" in text and "no P4Runtime server" in text


def test_pcap_writer_is_read_by_scapy(workdir):
    from scapy.utils import rdpcap
    frames = [probe(mac(2), i) for i in range(3)] + [bytes(70000)]
    with PcapWriter(workdir / "x.pcap") as w:
        for i, f in enumerate(frames):
            w.write(f, ts_ns=1_700_000_000_123_456_000 + i)
    packets = rdpcap(str(workdir / "x.pcap"))
    assert [bytes(p) for p in packets[:3]] == frames[:3]
    assert len(bytes(packets[3])) == 65535 and packets[3].wirelen == 70000
    assert abs(float(packets[0].time) - 1_700_000_000.123456) < 1e-6
    assert [f for _t, f in read_pcap(workdir / "x.pcap")][:3] == frames[:3]


def test_log_file_rotates_like_bmv2(workdir):
    opts = parse_command_line(["--log-file", str(workdir / "s"), "--log-file-max-size", "200",
                               "--log-file-max-files", "3", "p.p4"])
    log = switchd.SwitchLog(opts)
    for i in range(40):
        log.info(f"line {i}")
    log.close()
    names = sorted(p.name for p in workdir.iterdir())
    assert names == ["s.1.txt", "s.2.txt", "s.txt"]
    assert "line 39" in (workdir / "s.txt").read_text()


def test_switch_process_builds_a_simple_switch_command_line():
    sw = SwitchProcess("prog.p4", ["2@s1-eth2", "1@s1-eth1"], thrift_port=9095, pcap_dir="pc",
                       log_console=True, device_id=3, cpu_port=2, target_options=["--priority-queues", "2"],
                       command=["p4sim-switch"])
    assert sw.argv() == ["p4sim-switch", "-i", "1@s1-eth1", "-i", "2@s1-eth2", "--pcap=pc", "--thrift-port",
                         "9095", "--device-id", "3", "--log-console", "--cpu-port", "2", "prog.p4", "--",
                         "--priority-queues", "2"]


def test_a_portless_switch_starts_answers_and_stops_on_sigint(lab_program, workdir):
    sw = SwitchProcess(lab_program, {}, thrift_port=0, log_file=workdir / "s.log", name="noports")
    sw.start(timeout=30)
    try:
        assert sw.info["pid"] == sw.pid and sw.thrift_port != 0
        assert "READY {" in (workdir / "s.log").read_text()
        assert sw.cli("register_read rx_count 1") == "I.rx_count[1]= 0"
        os.kill(sw.pid, signal.SIGINT)
        wait_until(lambda: not sw.running, what="exit after SIGINT")
    finally:
        code = sw.stop()
    assert code == 0


# ---------------------------------------------------------------------------------------------
# Root: namespaces, veths, raw sockets

CLONE_NEWNET = 0x40000000


def in_netns(ns_name: str, fn):
    """Run fn() in a helper thread that joined namespace `ns_name`; return its result."""
    box = {}

    def work():
        try:
            fd = os.open(f"/run/netns/{ns_name}", os.O_RDONLY)
            try:
                if ctypes.CDLL(None, use_errno=True).setns(fd, CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), "setns")
            finally:
                os.close(fd)
            box["value"] = fn()
        except BaseException as e:      # handed to the caller
            box["error"] = e

    t = threading.Thread(target=work)
    t.start()
    t.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


class HostPort:
    """A raw socket on a host-side interface: send frames, collect the probes that arrive."""

    def __init__(self, ns: str, ifname: str):
        def make():
            s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
            s.bind((ifname, 0x0003))
            return s
        self.sock = in_netns(ns, make)
        self.sock.setblocking(False)
        self.ifname = ifname
        self.received: list[bytes] = []

    def send(self, frame: bytes) -> None:
        self.sock.send(frame)

    def collect(self) -> list[bytes]:
        """Probe frames received so far (frames this socket sent itself are skipped)."""
        while True:
            try:
                data, addr = self.sock.recvfrom(65536)
            except BlockingIOError:
                return self.received
            if addr[2] != socket.PACKET_OUTGOING and data[12:14] == PROBE_TYPE.to_bytes(2, "big"):
                self.received.append(data)

    def close(self) -> None:
        self.sock.close()


@dataclass
class Lab:
    """Namespace `sw` with interfaces w1..wN, namespace `hosts` with their peers h1..hN."""

    sw: NetnsExec
    hosts: NetnsExec
    n: int
    tag: str
    ports: dict = field(default_factory=dict)

    def w(self, i: int) -> str:
        return f"{self.tag}w{i}"

    def h(self, i: int) -> str:
        return f"{self.tag}h{i}"

    @property
    def switch_ports(self) -> dict:
        return {i: self.w(i) for i in range(1, self.n + 1)}


@contextmanager
def lab_network(n: int = 4, suffix: str = ""):
    tag = f"t{os.getpid() % 100000}{suffix}"
    with NetnsExec.create(f"{tag}S") as sw, NetnsExec.create(f"{tag}H") as hosts, ExitStack() as stack:
        for ns in (sw, hosts):
            run_in(ns, ["sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1",
                        "net.ipv6.conf.default.disable_ipv6=1"])
        lab = Lab(sw, hosts, n, tag)
        for i in range(1, n + 1):
            subprocess.run(["ip", "link", "add", lab.w(i), "netns", sw.name, "type", "veth", "peer",
                            "name", lab.h(i), "netns", hosts.name], check=True)
            run_in(sw, ["ip", "link", "set", lab.w(i), "up"])
            run_in(hosts, ["ip", "link", "set", lab.h(i), "up"])
            lab.ports[i] = HostPort(hosts.name, lab.h(i))
            stack.callback(lab.ports[i].close)
        yield lab


@pytest.fixture(scope="module")
def lab():
    if os.geteuid() != 0:
        pytest.skip("needs root")
    with lab_network() as net:
        yield net


def start_lab_switch(lab, program, workdir, **kw) -> SwitchProcess:
    sw = SwitchProcess(program, lab.switch_ports, thrift_port=0, netns=lab.sw.name,
                       log_file=workdir / "switch.log", **kw)
    return sw.start(timeout=30)


def drain(lab):
    for port in lab.ports.values():
        port.collect()
        port.received.clear()


@pytest.mark.root
def test_forwarding_multicast_pcaps_and_trace(lab, lab_program, workdir):
    drain(lab)
    sw = start_lab_switch(lab, lab_program, workdir, pcap_dir=workdir, trace_file=workdir / "trace")
    try:
        assert sw.run_script(LAB_COMMANDS)[0].endswith("Entry has been added with handle 0")
        sent = [probe(mac(2), 0), probe(mac(3), 1), probe(mac(2), 2), probe(mac(0xFF_FF_FF_FF_FF_FF), 3),
                probe(mac(9), 4)]
        for frame in sent:
            lab.ports[1].send(frame)
        wait_until(lambda: sw.stats()["received"] == 5 and sw.stats()["sent"] == 6, what="6 copies sent")
        got = {i: wait_until(lambda i=i, k=k: len(lab.ports[i].collect()) >= k and lab.ports[i].received,
                             what=f"{k} frames on port {i}")
               for i, k in ((2, 3), (3, 2), (4, 1))}
        stats = sw.stats()
        assert sw.cli("register_read rx_count 1") == "I.rx_count[1]= 5"
    finally:
        assert sw.stop() == 0
    seqs = {i: [f[17] for f in frames] for i, frames in got.items()}
    assert seqs == {2: [0, 2, 3], 3: [1, 3], 4: [3]}
    assert all(f[15] == i for i, frames in got.items() for f in frames)    # egress_port seen by egress
    assert lab.ports[1].collect() == []
    assert stats["program_drops"] == 1 and stats["failures"] == 0
    assert stats["ports"]["1"]["tx"] == 0 and stats["ports"]["2"]["rx"] == 0   # own frames not read back
    pcap_in = [f for _t, f in read_pcap(workdir / f"{lab.w(1)}_in.pcap")]
    assert pcap_in == sent
    assert [f for _t, f in read_pcap(workdir / f"{lab.w(2)}_out.pcap")] == got[2]
    assert read_pcap(workdir / f"{lab.w(2)}_in.pcap") == []
    trace = (workdir / "trace.txt").read_text()
    assert "[pkt 1] parser P: state parse_probe" in trace
    assert "table I.l2: hit -> I.forward" in trace and "table I.l2: miss -> I.drop" in trace
    assert "multicast to group 1" in trace and f"transmitted on port 4 ({lab.w(4)})" in trace


@pytest.mark.root
def test_garbage_frames_are_counted_and_do_not_stop_the_switch(lab, lab_program, workdir):
    drain(lab)
    sw = start_lab_switch(lab, lab_program, workdir)
    try:
        sw.run_script(LAB_COMMANDS)
        rng = random.Random(7)
        garbage = [bytes(rng.randrange(256) for _ in range(rng.randrange(14, 90))) for _ in range(60)]
        short = [mac(2) + mac(1) + PROBE_TYPE.to_bytes(2, "big") + b"\x01"] * 5   # probe header cut short
        for frame in garbage + short:
            lab.ports[3].send(frame)
        wait_until(lambda: sw.stats()["received"] == 65, what="65 frames received")
        lab.ports[1].send(probe(mac(2), 99))
        wait_until(lambda: [f[16:18] for f in lab.ports[2].collect()].count(b"\x00\x63") == 1,
                   what="the probe after the garbage")
        stats = sw.stats()
        assert sw.running and stats["failures"] == 0 and stats["parser_errors"] >= 5
    finally:
        assert sw.stop() == 0


@pytest.mark.root
def test_vlan_tags_reach_the_program(lab, lab_program, workdir):
    """The kernel moves 802.1Q tags out of received frames; the switch puts them back."""
    drain(lab)
    sw = start_lab_switch(lab, lab_program, workdir, pcap_dir=workdir)
    try:
        sw.run_script(LAB_COMMANDS)
        tagged = mac(3) + mac(1) + bytes.fromhex("8100 0064") + PROBE_TYPE.to_bytes(2, "big") + bytes(46)
        lab.ports[1].send(tagged)
        wait_until(lambda: sw.stats()["sent"] == 1, what="the tagged frame forwarded")
    finally:
        sw.stop()
    assert [f for _t, f in read_pcap(workdir / f"{lab.w(1)}_in.pcap")] == [tagged]
    assert [f for _t, f in read_pcap(workdir / f"{lab.w(3)}_out.pcap")] == [tagged]


@pytest.mark.root
def test_assert_failure_stops_the_switch_with_status_134(lab, lab_program, workdir):
    drain(lab)
    sw = start_lab_switch(lab, lab_program, workdir)
    try:
        lab.ports[1].send(probe(mac(2), 1, kind=0xEE))
        wait_until(lambda: not sw.running, what="the switch to exit")
    finally:
        code = sw.stop()
    assert code == 134
    assert "Assert error at" in (workdir / "switch.log").read_text()


@pytest.mark.root
def test_kill_is_a_crash_and_keeps_the_flushed_pcaps(lab, workdir):
    sw = start_lab_switch(lab, L3, workdir, pcap_dir=workdir)
    assert sw.kill() == -signal.SIGKILL and not sw.running
    assert read_pcap(workdir / f"{lab.w(1)}_in.pcap") == []          # the header was written at start


@pytest.mark.root
def test_start_failure_names_the_log_file_and_the_interface(lab, workdir):
    sw = SwitchProcess(L3, {1: "p4nosuch1"}, thrift_port=0, netns=lab.sw.name, log_file=workdir / "bad.log")
    with pytest.raises(SwitchStartError) as info:
        sw.start(timeout=30)
    text = str(info.value)
    assert str(workdir / "bad.log") in text and "exited with status 70" in text
    assert "interface p4nosuch1: no such interface" in text
    assert not sw.running


@pytest.mark.root
def test_sigterm_flushes_pcaps_of_a_busy_switch(lab, workdir):
    drain(lab)
    sw = start_lab_switch(lab, L3, workdir, pcap_dir=workdir)
    try:
        sw.cli("table_add ipv4_lpm ipv4_forward 10.9.0.0/16 => 00:00:00:00:00:02 2")
        frame = (mac(0xAA) + mac(1) + b"\x08\x00" + bytes.fromhex("4500002e000100004011") + bytes(2)
                 + bytes([10, 8, 0, 1, 10, 9, 0, 1]) + bytes(26))
        for _ in range(200):
            lab.ports[1].send(frame)
        wait_until(lambda: sw.stats()["sent"] == 200, what="200 frames forwarded")
    finally:
        assert sw.stop() == 0
    assert len(read_pcap(workdir / f"{lab.w(1)}_in.pcap")) == 200
    out = read_pcap(workdir / f"{lab.w(2)}_out.pcap")
    assert len(out) == 200 and out[0][1][22] == 0x3F            # TTL decremented


UDP_ECHO_SERVER = """
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("10.0.2.2", 7000))
s.settimeout(20)
print("ready", flush=True)
for _ in range(3):
    data, peer = s.recvfrom(2048)
    s.sendto(data, peer)
"""
UDP_ECHO_CLIENT = """
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(5)
echoed = 0
for i in range(3):
    s.sendto(b"x%d" % i, ("10.0.2.2", 7000))
    echoed += s.recvfrom(2048)[0] == b"x%d" % i
print(echoed)
"""


@pytest.mark.root
def test_drop_in_for_simple_switch_in_a_mininet_script(workdir):
    """A Mininet script starts the switch the way p4_mininet starts simple_switch (node.popen,
    same flags) and configures it with the CLI from a command file; hosts ping through it."""
    mininet = pytest.importorskip("mininet.net")
    from mininet.node import Switch
    tag = f"m{os.getpid() % 10000}"
    commands = workdir / "s1-commands.txt"
    commands.write_text("table_add ipv4_lpm ipv4_forward 10.0.1.1/32 => 00:00:00:00:01:01 1\n"
                        "table_add ipv4_lpm ipv4_forward 10.0.2.2/32 => 00:00:00:00:02:02 2\n")

    class BundledP4Switch(Switch):
        """What a p4_mininet-style P4Switch becomes with sw_path = the bundled switch."""

        def __init__(self, name, **params):
            params["inNamespace"] = True          # keep its interfaces out of the root namespace
            Switch.__init__(self, name, **params)
            self.process = None

        def start(self, controllers):
            self.cmd("ip link set lo up")         # the control port listens on 127.0.0.1 here
            ports = {self.ports[i]: i.name for i in self.intfList() if i.name != "lo"}
            self.process = SwitchProcess(L3, ports, thrift_port=9090, popen=self.popen,
                                         log_file=workdir / f"p4s.{self.name}.log", log_console=True,
                                         command=[os.path.join(os.path.dirname(sys.executable), "p4sim-switch")])
            self.process.start(timeout=30)

        def stop(self, deleteIntfs=True):
            if self.process is not None:
                self.process.stop()
            Switch.stop(self, deleteIntfs)

    net = mininet.Mininet(controller=None, build=False, autoSetMacs=False)
    try:
        h1 = net.addHost(f"{tag}a", ip="10.0.1.1/24", mac="00:00:00:00:01:01")
        h2 = net.addHost(f"{tag}b", ip="10.0.2.2/24", mac="00:00:00:00:02:02")
        s1 = net.addSwitch(f"{tag}s", cls=BundledP4Switch)
        net.addLink(h1, s1, port2=1)
        net.addLink(h2, s1, port2=2)
        net.build()
        net.start()
        for h, gw in ((h1, "10.0.1.254"), (h2, "10.0.2.254")):
            h.cmd(f"ethtool -K {h.defaultIntf()} tx off")   # as p4-utils hosts: checksums filled in software
            h.cmd(f"ip route add default via {gw}")
            h.cmd(f"ip neigh replace {gw} lladdr 00:00:00:00:fe:fe dev {h.defaultIntf()}")
        cli = s1.popen([os.path.join(os.path.dirname(sys.executable), "p4sim-cli"), "--thrift-port", "9090"],
                       stdin=commands.open("rb"))
        out, err = cli.communicate(timeout=30)
        assert cli.returncode == 0, err
        assert out.decode().count("Entry has been added with handle") == 2
        server = h2.popen([sys.executable, "-c", UDP_ECHO_SERVER], stdout=subprocess.PIPE, text=True)
        try:
            assert server.stdout.readline().strip() == "ready"
            client = h1.popen([sys.executable, "-c", UDP_ECHO_CLIENT], stdout=subprocess.PIPE, text=True)
            out, _ = client.communicate(timeout=30)
            assert out.strip() == "3"                 # three UDP datagrams echoed through the switch
        finally:
            server.kill()
            server.wait()
    finally:
        net.stop()


@pytest.mark.root
def test_port_transmits_again_after_its_link_was_down(lab_program, workdir):
    """Frames sent while a port's link is down are dropped and counted; they must not fill the
    transmit ring for good (with MTU 9000 it has 32 slots, fewer than the frames sent here)."""
    with lab_network(n=2, suffix="d") as lab:
        run_in(lab.sw, ["ip", "link", "set", lab.w(2), "mtu", "9000"])
        sw = start_lab_switch(lab, lab_program, workdir)
        try:
            sw.run_script("table_add l2 forward 00:00:00:00:00:02 => 2\n")
            run_in(lab.sw, ["ip", "link", "set", lab.w(2), "down"])
            for seq in range(40):
                lab.ports[1].send(probe(mac(2), seq))
            wait_until(lambda: sw.stats()["received"] >= 40, what="40 frames in while port 2 is down")
            assert sw.stats()["ports"]["2"]["tx_errors"] == 40
            run_in(lab.sw, ["ip", "link", "set", lab.w(2), "up"])
            seq = iter(range(100, 1000))
            wait_until(lambda: lab.ports[1].send(probe(mac(2), next(seq))) or lab.ports[2].collect(),
                       what="a frame out of port 2 after the link came back")
            drain(lab)
            for s in range(1000, 1010):
                lab.ports[1].send(probe(mac(2), s))
            def seqs():                 # (frames of the wait loop above may still trail in)
                return {int.from_bytes(f[16:18], "big") for f in lab.ports[2].collect()} - set(range(1000))
            wait_until(lambda: seqs() == set(range(1000, 1010)), what="frames 1000-1009 out of port 2")
        finally:
            sw.stop()


BLAST = """
import socket, sys, time
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
s.bind((sys.argv[1], 0))
frame, deadline = bytes.fromhex(sys.argv[2]), time.monotonic() + float(sys.argv[3])
while time.monotonic() < deadline:
    for _ in range(256):
        try:
            s.send(frame)
        except OSError:
            pass
"""


@pytest.mark.root
def test_switch_keeps_forwarding_under_overload(lab_program, workdir):
    """Offered more frames than it can take, with a small receive ring, the switch must keep
    draining it: a batch that ended on the kernel's last write while the full ring dropped
    frames without a wake-up once left the switch asleep for good (epoll never reported the
    ring again). Every 0.2 s window must show frames forwarded, and the kernel must have
    dropped some (the overload really happened)."""
    with lab_network(n=2, suffix="o") as lab:
        sw = start_lab_switch(lab, lab_program, workdir, target_options=["--rx-ring-frames", "64"])
        sender = None
        try:
            sw.run_script("table_add l2 forward 00:00:00:00:00:02 => 2\n")
            sender = subprocess.Popen(["ip", "netns", "exec", lab.hosts.name, sys.executable, "-c", BLAST,
                                       lab.h(1), probe(mac(2), 1).hex(), "6"], start_new_session=True)
            wait_until(lambda: sw.stats()["sent"] > 1000, what="frames forwarded under load")
            counts = []
            for _ in range(20):
                time.sleep(0.2)
                counts.append(sw.stats()["sent"])
            stalls = [i for i in range(1, len(counts)) if counts[i] == counts[i - 1]]
            assert not stalls, f"no frame forwarded in windows {stalls}: {counts}"
            assert sw.stats()["kernel_drops"] > 0
        finally:
            if sender is not None:
                os.killpg(sender.pid, signal.SIGTERM)
                sender.wait(10)
            sw.stop()


# ---------------------------------------------------------------------------------------------
# Root: port impairment (the netem stand-in of the bundled target) on real frames

SO_TIMESTAMPNS = 35                     # SCM_TIMESTAMPNS alike (x86-64, arm64)
IMPAIR_COMMANDS = "table_add l2 forward 00:00:00:00:00:02 => 2\n"


def seq_of(frame: bytes) -> int:
    return int.from_bytes(frame[16:18], "big")


class TimedPort:
    """A raw socket on a host-side interface that keeps each probe's kernel receive time."""

    def __init__(self, ns: str, ifname: str):
        def make():
            s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(PROBE_TYPE))
            s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            s.setsockopt(socket.SOL_SOCKET, 33, 1 << 22)           # SO_RCVBUFFORCE: bursts fit
            s.bind((ifname, PROBE_TYPE))
            return s
        self.sock = in_netns(ns, make)
        self.sock.setblocking(False)
        self.arrivals: list[tuple[int, int]] = []                 # (seq, receive time ns)

    def collect(self) -> list:
        while True:
            try:
                data, anc, _flags, addr = self.sock.recvmsg(2048, 64)
            except BlockingIOError:
                return self.arrivals
            if addr[2] == socket.PACKET_OUTGOING:
                continue
            stamp = next((d for level, kind, d in anc if kind == SO_TIMESTAMPNS), None)
            sec, nsec = struct.unpack("qq", stamp[:16]) if stamp else divmod(time.time_ns(), 10 ** 9)
            self.arrivals.append((seq_of(data), sec * 10 ** 9 + nsec))

    def seqs(self) -> list[int]:
        return [s for s, _t in self.collect()]

    def close(self) -> None:
        self.sock.close()


def send_probes(lab, seqs, gap: float = 0.0, burst: int = 50) -> dict:
    """Send probes (to port 2) from port 1, `burst` at a time, `gap` s apart; {seq: send time ns}."""
    sent = {}
    for i, seq in enumerate(seqs):
        sent[seq] = time.time_ns()
        lab.ports[1].send(probe(mac(2), seq))
        if gap:
            time.sleep(gap)
        elif i % burst == burst - 1:
            time.sleep(0.005)
    return sent


def arrived(rx: TimedPort, sw, total: int, timeout: float = 15.0) -> list[int]:
    """Wait until the switch has dealt with `total` probes since it started (sent on, or
    dropped by an impairment, none held) and every one it sent has arrived; the seqs received
    so far, in arrival order."""
    def settled():
        s = sw.stats()
        held = s["ports"]["2"]["impair_out"]["queued"]
        return s["sent"] + s["impaired_drops"] >= total and not held and len(rx.collect()) >= s["sent"]
    wait_until(settled, timeout, what=f"{total} probes dealt with")
    return rx.seqs()


@contextmanager
def impair_lab(program, workdir, seed: int = 7):
    """A two-port lab whose switch forwards probes from port 1 to port 2 (log at level info on
    its console), with a timestamping receiver on port 2."""
    with lab_network(n=2, suffix="i") as lab:
        rx = TimedPort(lab.hosts.name, lab.h(2))
        sw = start_lab_switch(lab, program, workdir, log_console=True, options=["--seed", str(seed), "-L", "info"])
        try:
            sw.run_script(IMPAIR_COMMANDS)
            yield lab, sw, rx
        finally:
            sw.stop()
            rx.close()


def _binomial_ok(count: int, n: int, p: float) -> bool:
    return abs(count - n * p) <= 5 * (n * p * (1 - p)) ** 0.5


@pytest.mark.root
def test_port_impair_loss_is_seeded_and_counted_and_clear_restores(lab_program, workdir, report):
    runs = []
    for _ in range(2):                              # the same seed loses the same frames
        with impair_lab(lab_program, workdir, seed=7) as (lab, sw, rx):
            sw.cli("port_impair 2 out loss 30")
            assert "impair out: loss 30% delay 0ms" in sw.cli("show_ports")
            send_probes(lab, range(1000))
            got = arrived(rx, sw, 1000)
            stats = sw.stats()
            sw.cli("port_impair_clear 2")
            send_probes(lab, range(1000, 1200))
            after = [s for s in arrived(rx, sw, 1200) if s >= 1000]
        runs.append(got)
        report(f"port_impair loss 30%: {len(got)}/1000 frames received ({100 - len(got) / 10:.1f}% lost)")
        assert _binomial_ok(len(got), 1000, 0.7), len(got)
        assert got == sorted(got)
        out = stats["ports"]["2"]
        assert out["impair_out"]["lost"] == 1000 - len(got) == stats["impaired_drops"]
        assert out["tx"] == len(got) and stats["received"] == 1000      # counters show the wire
        assert after == list(range(1000, 1200))                        # cleared: nothing lost
    assert runs[0] == runs[1]


@pytest.mark.root
def test_port_impair_in_drops_before_the_pipeline(lab_program, workdir):
    with impair_lab(lab_program, workdir) as (lab, sw, rx):
        sw.cli("port_impair 1 in loss 50")
        send_probes(lab, range(400))
        got = arrived(rx, sw, 400)
        stats = sw.stats()
        assert _binomial_ok(len(got), 400, 0.5)
        assert stats["received"] == stats["ports"]["1"]["rx"] == len(got)
        assert sw.cli("register_read rx_count 1") == f"I.rx_count[1]= {len(got)}"     # the program saw only those
        assert stats["ports"]["2"]["impair_out"]["impairment"] is None


def _latencies(sent: dict, arrivals: list) -> list[float]:
    return sorted((t - sent[s]) / 1e6 for s, t in arrivals if s in sent)


@pytest.mark.root
def test_port_impair_delay_reorder_show_errors_and_shutdown(lab_program, workdir, report):
    with impair_lab(lab_program, workdir) as (lab, sw, rx):
        base = send_probes(lab, range(40), gap=0.005)
        arrived(rx, sw, 40)
        sw.cli("port_impair 2 out delay 20")
        delayed = send_probes(lab, range(100, 140), gap=0.005)
        arrived(rx, sw, 80)
        baseline, with_delay = _latencies(base, rx.arrivals), _latencies(delayed, rx.arrivals)
        extra = statistics.median(with_delay) - statistics.median(baseline)
        report(f"port_impair delay 20 ms: latency median {statistics.median(baseline):.2f} ms -> "
               f"{statistics.median(with_delay):.2f} ms (extra {extra:.2f} ms), min {with_delay[0]:.2f} ms")
        assert len(with_delay) == 40 and with_delay[0] >= 20.0 and 20.0 <= extra < 40.0

        sw.cli("port_impair 2 out delay 20 reorder 50")
        send_probes(lab, range(200, 400))
        got = [s for s in arrived(rx, sw, 280) if s >= 200]
        late = sum(1 for i, s in enumerate(got) if s < max(got[:i], default=-1))
        reordered = sw.stats()["ports"]["2"]["impair_out"]["reordered"]
        report(f"port_impair delay 20 reorder 50%: {reordered}/200 sent at once, {late} arrived after a later frame")
        assert sorted(got) == list(range(200, 400)) and late > 0 and _binomial_ok(reordered, 200, 0.5)

        show = sw.request("port_impair_show 2")
        assert show["data"]["2"]["out"]["impairment"]["reorder"] == 50 and "reorder 50%" in show["output"]
        for command, message in (("port_impair 2 out loss 150", "port_impair: loss: must be a number in [0, 100]"),
                                 ("port_impair 9 out loss 1", "port_impair: no interface is attached as port 9"),
                                 ("port_impair 2 sideways loss 1", "direction must be 'in' or 'out', got 'sideways'"),
                                 ("port_impair 2 out", "give at least one of loss"),
                                 ("port_impair_clear 2 up", "port_impair_clear: direction must be")):
            reply = sw.request(command)
            assert not reply["ok"] and message in reply["error"], (command, reply)

        sw.cli("port_impair_clear 2 out")
        clean = send_probes(lab, range(500, 540), gap=0.005)
        assert [s for s in arrived(rx, sw, 320) if s >= 500] == list(range(500, 540))
        assert statistics.median(_latencies(clean, rx.arrivals)) < 20.0

        sw.cli("port_impair 2 out delay 5000")
        send_probes(lab, range(600, 610))
        wait_until(lambda: sw.stats()["ports"]["2"]["impair_out"]["queued"] == 10, what="10 frames held")
    log = (workdir / "switch.log").read_text()
    assert "10 frames held by port impairments dropped" in log
