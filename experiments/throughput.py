"""Maximum forwarding rate per app with and without RedPlane, on the bundled target.

Measured in-process, not through Mininet: each (app, variant) is deployed as a whole in one
process (testbed.redplane.sim.AppFabric: leaves, spines, the store's state machine, echo
servers, with a frozen fake clock), warmed up with one packet per flow so every flow has its
state (and, with RedPlane, its lease), and then driven with a steady workload of established
TCP flows in both directions (the read path). The time each spine spends inside
`SimpleSwitch.process` is measured around every call; the rate is data packets through the
spines divided by that time (packets/s of one core running the interpreter). For the
write-centric counter every packet is a write, and the spines' time on the store acks that
release the packets is included. Variants are measured in the same run, interleaved, over
several repetitions (medians reported). The frozen clock means no lease renewals are due
during the measurement (with real time a RedPlane flow renews its lease about once per half
switch-lease, a negligible share of packets).

    python experiments/throughput.py            # nat, firewall, lb, sketch, counter; noft vs redplane
    python experiments/throughput.py --quick    # nat and sketch, fewer packets
"""
import argparse
import sys
import time

import _env  # noqa: F401  (re-runs with the project's .venv when needed)

import pandas as pd

from analysis import experiments as ax
from analysis.plots import bar_panels
from p4apps.apps import APPS
from testbed.experiment import (experiment_dir, finish_run, in_process_run, record_figure, save_json,
                                write_table)

MEASURED = ("in-process: SimpleSwitch.process of the spines timed call by call inside a whole in-process "
            "deployment (AppFabric, fake clock); bundled v1model interpreter, one core; not through Mininet")
SWITCH_PORT = 4000


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--apps", default="nat,firewall,lb,sketch,counter", help="comma-separated apps")
    p.add_argument("--variants", default="noft,redplane", help="comma-separated variants (default noft,redplane)")
    p.add_argument("--flows", type=int, default=32, help="established flows in the workload (default 32)")
    p.add_argument("--packets", type=int, default=3000, help="data packets sent per repetition (default 3000)")
    p.add_argument("--reps", type=int, default=5, help="repetitions per variant, interleaved (default 5)")
    p.add_argument("--payload", type=int, default=64, help="TCP payload bytes per packet (default 64)")
    p.add_argument("--quick", action="store_true", help="nat and sketch, 800 packets x 3 repetitions (for CI)")
    args = p.parse_args(argv)
    if args.quick:
        args.apps, args.packets, args.reps = "nat,sketch", 800, 3
    for name in args.apps.split(","):
        if name not in APPS:
            p.error(f"--apps: unknown app {name!r} (known: {', '.join(APPS)})")
    return args


class PipelineTimer:
    """Stands in for a switch's `process`: calls it and adds up the time spent, counting data
    frames (anything but RedPlane acks to the switch and CPU-port injections) apart."""

    def __init__(self, switch):
        self.inner = switch.process
        self.seconds = 0.0
        self.data = 0
        self.other = 0

    def __call__(self, port, frame):
        start = time.thread_time()
        out = self.inner(port, frame)
        self.seconds += time.thread_time() - start
        if port == 510 or _to_switch_port(frame):
            self.other += 1
        else:
            self.data += 1
        return out


def _to_switch_port(frame: bytes) -> bool:
    if len(frame) < 38 or frame[12:14] != b"\x08\x00" or frame[23] != 17:
        return False
    ihl = (frame[14] & 0x0F) * 4
    return int.from_bytes(frame[14 + ihl + 2:14 + ihl + 4], "big") == SWITCH_PORT


def tcp_frame(f, client: str, server: str, sport: int, dport: int, payload: int) -> bytes:
    from scapy.all import IP, TCP, Ether
    _, gw = f.topo.gateway_of(client)
    dst = f.app.destination(f.topo, server)
    return bytes(Ether(src=f.topo.mac_of(client), dst=gw) / IP(src=f.topo.ip_of(client), dst=dst)
                 / TCP(sport=sport, dport=dport, flags="A", seq=1000, ack=1) / (b"x" * payload))


class Deployment:
    """One (app, variant) in process, its workload frames, and a timer on every spine."""

    def __init__(self, app: str, variant: str, flows: int, payload: int):
        from testbed.redplane.sim import AppFabric
        self.app, self.variant = app, variant
        self.f = AppFabric(app, variant)
        clients, servers = self.f.topo.clients(), self.f.topo.servers()
        self.frames = [(clients[i % len(clients)],
                        tcp_frame(self.f, clients[i % len(clients)], servers[i % len(servers)], 20000 + i, 80, payload))
                       for i in range(flows)]

    def warm_up(self) -> None:
        for _ in range(2):
            for client, frame in self.frames:
                self.f.send(client, frame)
        self.f.advance(0.001)

    def measure(self, packets: int) -> dict:
        before = sum(len(v) for v in self.f.seen.values())
        timers = {s: PipelineTimer(self.f.fabric.switches[s]) for s in self.f.topo.spines()}
        for s, t in timers.items():
            self.f.fabric.switches[s].process = t
        try:
            for i in range(packets):
                client, frame = self.frames[i % len(self.frames)]
                self.f.send(client, frame)
        finally:
            for s in timers:
                del self.f.fabric.switches[s].process
        delivered = sum(len(v) for v in self.f.seen.values()) - before
        return {"packets": sum(t.data for t in timers.values()), "seconds": sum(t.seconds for t in timers.values()),
                "other_frames": sum(t.other for t in timers.values()), "sent": packets, "delivered": delivered}


def run(args, exp: str) -> list[str]:
    deployments, run_dirs = [], []
    for app in args.apps.split(","):
        for variant in args.variants.split(","):
            d = Deployment(app, variant, args.flows, args.payload)
            d.warm_up()
            d.run_dir = in_process_run(exp, f"throughput-{app}-{variant}",
                                       {"app": app, "variant": variant, "flows": args.flows, "packets": args.packets,
                                        "reps": args.reps, "payload": args.payload}, MEASURED)
            d.reps = []
            deployments.append(d)
    for rep in range(args.reps):
        for d in deployments:                       # interleaved: drift hits every variant alike
            d.reps.append({"rep": rep, **d.measure(args.packets)})
    for d in deployments:
        save_json(d.run_dir, "timings", {"app": d.app, "variant": d.variant, "reps": d.reps})
        finish_run(d.run_dir)
        run_dirs.append(d.run_dir)
        print(f"  {d.app}/{d.variant}: {len(d.reps)} repetitions ({d.run_dir})")
    return run_dirs


def load_reps(run_dirs: list[str]) -> pd.DataFrame:
    rows = []
    for d in run_dirs:
        data = ax.read_json(d, "timings")
        rows += [{"app": data["app"], "variant": data["variant"], **r} for r in data["reps"]]
    return pd.DataFrame(rows)


def figure(table: pd.DataFrame):
    t = table.assign(kpps=table["pps"] / 1e3, kpps_min=table["pps_min"] / 1e3, kpps_max=table["pps_max"] / 1e3)
    t["variant"] = [("snapshot" if a == "sketch" and v == "redplane" else v) for a, v in zip(t["app"], t["variant"])]
    return bar_panels(t, [{"value": "kpps", "ylabel": "kpps", "low": "kpps_min", "high": "kpps_max", "annotate": True}],
                      x="app", hue="variant", x_kind="app", kind="variant")


def main(argv=None) -> int:
    args = parse_args(argv)
    exp = experiment_dir("throughput")
    print(f"throughput -> {exp}\n  measured {MEASURED}")
    run_dirs = run(args, exp)
    reps = load_reps(run_dirs)
    table = ax.rate_table(reps)
    write_table(reps, exp, "repetitions")
    write_table(table, exp, "throughput")
    path = record_figure(figure(table), exp, "throughput")
    print("\n" + table.round({"pps": 0, "pps_min": 0, "pps_max": 0, "us_per_packet": 1, "vs_noft": 3})
          .to_string(index=False))
    print("\npps = data packets through the spines / time inside the spines' SimpleSwitch.process (median of "
          "repetitions): the interpreter's maximum rate on one core, in-process, not a Mininet measurement.")
    print("vs_noft = RedPlane rate / no-fault-tolerance rate of the same app, same target, same run.")
    print(f"figure: {path}\ntables: {exp}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
