#!/usr/bin/env python3
"""Throughput of the bundled switch process against a minimal raw-socket forwarder (needs root).

    sudo .venv/bin/python benchmarks/switch_throughput.py [--duration 3] [--repeat 3]

Topology (three network namespaces made here and removed on every exit path):

    sender ns: <tag>s0 ==veth== <tag>w1 : forwarder ns : <tag>w2 ==veth== <tag>r0 : receiver ns

The forwarder namespace runs, in turn: (raw) a minimal Python loop receiving on one AF_PACKET
socket and sending on the other; (l3) the bundled switch with benchmarks/p4/l3.p4; (three_tables)
the bundled switch with benchmarks/p4/three_tables.p4 (ACL, LPM, egress MAC rewrite, a register
indexed by a CRC16 flow hash); (wire) the bundled switch with benchmarks/p4/wire.p4, which sends
every frame on unparsed: the switch's own per-frame cost. The sender blasts pre-built 64-byte UDP frames (16 flows) from a
raw socket for a bounded time; throughput is the rate at which frames arrive on the receiver's
interface (its kernel rx counter) while the sender saturates the forwarder, measured over
`--duration` seconds after the first frames arrive. With two or more CPUs the sender and the
forwarder are pinned to different CPUs. Each variant runs `--repeat` times, interleaved; medians
and ratios to the raw forwarder are printed, with the interpreter-only rate (SimpleSwitch.process
in a loop, no I/O) for context. `--impair "2 out loss 1"` sets that port impairment on the
switches (`port_impair 2 out loss 1`: the cost of the impaired path).
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

HERE = Path(__file__).resolve().parent
VARIANTS = ("l3", "three_tables", "wire")
PROGRAMS = {v: HERE / "p4" / f"{v}.p4" for v in VARIANTS}
COMMANDS = {v: HERE / "p4" / f"{v}_commands.txt" for v in VARIANTS}
ETH_P_ALL = 0x0003
SOL_PACKET, PACKET_IGNORE_OUTGOING = 263, 23
FLOWS = 16


def frames() -> list[bytes]:
    """64-byte Ethernet/IPv4/UDP frames of FLOWS flows, 10.99.1.1 -> 10.99.2.1."""
    import struct
    out = []
    for flow in range(FLOWS):
        payload = bytes(18)
        udp = struct.pack("!HHHH", 10000 + flow, 5000, 8 + len(payload), 0) + payload
        ip = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), flow, 0, 64, 17, 0,
                                   socket.inet_aton("10.99.1.1"), socket.inet_aton("10.99.2.1")))
        csum = sum(struct.unpack("!10H", ip))
        csum = (csum & 0xFFFF) + (csum >> 16)
        ip[10:12] = struct.pack("!H", ~((csum & 0xFFFF) + (csum >> 16)) & 0xFFFF)
        eth = bytes.fromhex("0000000000aa" "000000000101" "0800")
        out.append(eth + bytes(ip) + udp)
    return out


def raw_socket(ifname: str, rcvbuf: int = 1 << 21) -> socket.socket:
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    s.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
    s.setsockopt(socket.SOL_SOCKET, 33, rcvbuf)        # SO_RCVBUFFORCE, as the switch
    s.bind((ifname, ETH_P_ALL))
    return s


# ---- roles run in the namespaces (this script re-executed with --role) ------------------------

def role_sender(ifname: str, seconds: float) -> None:
    """Send frames as fast as possible for `seconds`; print how many were sent."""
    sock = raw_socket(ifname)
    send, batch, sent = sock.send, frames() * 64, 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for frame in batch:
            try:
                send(frame)
            except OSError:
                pass
        sent += len(batch)
    print(json.dumps({"sent": sent}), flush=True)


def role_raw_forwarder(in_if: str, out_if: str) -> None:
    """The baseline: recv on one raw socket, send on the other, forever."""
    a, b = raw_socket(in_if), raw_socket(out_if)
    recv, send = a.recv, b.send
    print("READY", flush=True)
    while True:
        send(recv(65536))


# ---- the harness -----------------------------------------------------------------------------

def run(argv, check=True, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(argv, check=check, capture_output=True, text=True, **kw)


class Bench:
    """Namespaces, veths and processes of one benchmark run; everything undone by close()."""

    def __init__(self, stack: ExitStack, tag: str, cpus: list[int], impair: str | None = None):
        self.stack, self.tag, self.impair = stack, tag, impair
        self.ns = {role: f"{tag}{role[0]}" for role in ("sender", "fwd", "receiver")}
        self.ifs = {"s0": f"{tag}s0", "w1": f"{tag}w1", "w2": f"{tag}w2", "r0": f"{tag}r0"}
        self.cpu_sender, self.cpu_fwd = (cpus[0], cpus[1]) if len(cpus) > 1 else (None, None)

    def build(self) -> None:
        for name in self.ns.values():
            run(["ip", "netns", "add", name])
            self.stack.callback(run, ["ip", "netns", "delete", name], check=False)
            run(["ip", "-n", name, "link", "set", "lo", "up"])
        i, ns = self.ifs, self.ns
        run(["ip", "link", "add", i["s0"], "netns", ns["sender"], "type", "veth", "peer", "name", i["w1"], "netns", ns["fwd"]])
        run(["ip", "link", "add", i["w2"], "netns", ns["fwd"], "type", "veth", "peer", "name", i["r0"], "netns", ns["receiver"]])
        for name, intf in ((ns["sender"], i["s0"]), (ns["fwd"], i["w1"]), (ns["fwd"], i["w2"]), (ns["receiver"], i["r0"])):
            run(["ip", "-n", name, "link", "set", intf, "up"])

    def prefix(self, role: str, cpu) -> list[str]:
        pin = ["taskset", "-c", str(cpu)] if cpu is not None else []
        return ["ip", "netns", "exec", self.ns[role], *pin]

    def rx_packets(self) -> int:
        out = run(["ip", "-n", self.ns["receiver"], "-s", "-j", "link", "show", "dev", self.ifs["r0"]]).stdout
        return json.loads(out)[0]["stats64"]["rx"]["packets"]

    def measure(self, seconds: float, sender_seconds: float, fwd_pid: int) -> tuple[float, float]:
        """Start the sender, wait for frames to flow, count them over `seconds`; return frames
        per second of wall time, and per second of CPU time used by the forwarder (`fwd_pid`),
        which other load on the machine does not change much."""
        sender = subprocess.Popen(self.prefix("sender", self.cpu_sender) + [sys.executable, __file__, "--role", "sender",
                                  self.ifs["s0"], str(sender_seconds)], stdout=subprocess.PIPE, text=True,
                                  start_new_session=True)
        try:
            start = self.rx_packets()
            wait_until(lambda: self.rx_packets() > start + 1000, timeout=sender_seconds / 2,
                       what="frames to reach the receiver")
            c0, t0, cpu0 = self.rx_packets(), time.monotonic(), cpu_seconds(fwd_pid)
            deadline = t0 + seconds
            while time.monotonic() < deadline:          # the measurement window itself
                time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))
            c1, t1, cpu1 = self.rx_packets(), time.monotonic(), cpu_seconds(fwd_pid)
            if sender.poll() is not None:
                raise RuntimeError("the sender stopped before the end of the measurement window")
            return (c1 - c0) / (t1 - t0), (c1 - c0) / max(cpu1 - cpu0, 1e-3)
        finally:
            stop(sender)

    def raw_forwarder(self):
        proc = subprocess.Popen(self.prefix("fwd", self.cpu_fwd) + [sys.executable, __file__, "--role", "raw",
                                self.ifs["w1"], self.ifs["w2"]], stdout=subprocess.PIPE, text=True,
                                start_new_session=True)
        line = proc.stdout.readline()
        if line.strip() != "READY":
            stop(proc)
            raise RuntimeError(f"raw forwarder did not start: {line!r}")
        return proc

    def switch(self, variant: str, log_path: str):
        from testbed.v1model.process import SwitchProcess
        def popen(argv, **kw):          # in the forwarder namespace, pinned like the raw forwarder
            return subprocess.Popen(self.prefix("fwd", self.cpu_fwd) + argv, start_new_session=True, **kw)
        sw = SwitchProcess(PROGRAMS[variant], {1: self.ifs["w1"], 2: self.ifs["w2"]}, thrift_port=0,
                           log_file=log_path, popen=popen, name=f"bench-{variant}")
        sw.start(timeout=30)
        sw.run_script(COMMANDS[variant].read_text())
        if self.impair:
            sw.cli(f"port_impair {self.impair}")
        return sw


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process `pid` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_until(predicate, timeout: float, what: str, poll: float = 0.01) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(poll)


def stop(proc: subprocess.Popen, timeout: float = 5.0) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, 15)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()


def interpreter_rate(variant: str, count: int = 10000, repeat: int = 5) -> float:
    """Frames per second through SimpleSwitch.process alone (no I/O); best of `repeat` rounds,
    which other load on the machine affects least."""
    from testbed.v1model.simple_switch import SimpleSwitch
    sw = SimpleSwitch(str(PROGRAMS[variant]))
    sw.cli_script(COMMANDS[variant].read_text())
    batch = frames()
    assert sw.process(1, batch[0]), f"{variant}: the benchmark frame is not forwarded"
    best = 0.0
    for _ in range(repeat):
        t0 = time.perf_counter()
        for i in range(count):
            sw.process(1, batch[i % FLOWS])
        best = max(best, count / (time.perf_counter() - t0))
    return best


def benchmark(args) -> dict:
    cpus = sorted(os.sched_getaffinity(0))
    results: dict[str, list[float]] = {"raw": [], **{v: [] for v in VARIANTS}}
    per_cpu: dict[str, list[float]] = {k: [] for k in results}
    with ExitStack() as stack, tempfile.TemporaryDirectory(prefix="p4sim-bench-") as tmp:
        bench = Bench(stack, f"pb{os.getpid() % 100000}", cpus, args.impair)
        bench.build()
        for rep in range(args.repeat):
            for variant in results:
                if variant == "raw":
                    proc = bench.raw_forwarder()
                    try:
                        pps, cpu_pps = bench.measure(args.duration, args.duration + 10, proc.pid)
                    finally:
                        stop(proc)
                else:
                    sw = bench.switch(variant, os.path.join(tmp, f"{variant}-{rep}.log"))
                    try:
                        pps, cpu_pps = bench.measure(args.duration, args.duration + 10, sw.pid)
                        stats = sw.stats()
                    finally:
                        sw.stop()
                    if stats["failures"]:
                        raise RuntimeError(f"{variant}: {stats['failures']} frames failed in the switch")
                results[variant].append(pps)
                per_cpu[variant].append(cpu_pps)
                print(f"  run {rep + 1}/{args.repeat} {variant:<13} {pps:>10,.0f} pps "
                      f"{cpu_pps:>10,.0f} per CPU-second", flush=True)
    return results, per_cpu


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


NAMES = {"raw": "raw Python forwarder", "l3": "switch, l3.p4", "three_tables": "switch, three_tables.p4",
         "wire": "switch, wire.p4"}


def report(results: dict, per_cpu: dict, interp: dict, cpus: int, loads: tuple) -> str:
    med = {k: statistics.median(v) for k, v in results.items()}
    cmed = {k: statistics.median(v) for k, v in per_cpu.items()}
    lines = [f"CPUs: {cpus}; frames: 64 B UDP, {FLOWS} flows; medians of {len(results['raw'])} runs; "
             f"load average before/after: {loads[0]} / {loads[1]}",
             f"{'variant':<28}{'pps':>10}{'ratio':>7}{'pps/CPU-s':>12}{'ratio':>7}"]
    for k, name in NAMES.items():
        lines.append(f"{name:<28}{med[k]:>10,.0f}{med[k] / med['raw']:>7.2f}{cmed[k]:>12,.0f}{cmed[k] / cmed['raw']:>7.2f}")
    for k in VARIANTS:
        lines.append(f"{'interpreter only, ' + k:<28}{interp[k]:>10,.0f}")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", type=float, default=3.0, help="measurement window per run (s)")
    p.add_argument("--repeat", type=int, default=3, help="runs per variant")
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    p.add_argument("--impair", metavar="ARGS", help='port impairment on the switches, e.g. "2 out loss 1"')
    p.add_argument("--role", nargs="+", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.role:
        role, *rest = args.role
        if role == "sender":
            role_sender(rest[0], float(rest[1]))
        else:
            role_raw_forwarder(rest[0], rest[1])
        return 0
    if os.geteuid() != 0:
        print("switch_throughput: needs root (network namespaces, raw sockets)", file=sys.stderr)
        return 1
    before = loadavg()
    interp = {v: interpreter_rate(v) for v in PROGRAMS}
    results, per_cpu = benchmark(args)
    text = report(results, per_cpu, interp, len(os.sched_getaffinity(0)), (before, loadavg()))
    print(text)
    if args.json:
        Path(args.json).write_text(json.dumps({"runs": results, "per_cpu_second": per_cpu,
                                               "interpreter": interp}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
