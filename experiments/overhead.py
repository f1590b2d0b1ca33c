"""Bandwidth overhead of RedPlane: replication bytes / data bytes, on the Mininet fabric.

Three sweeps, each trial a fabric of bundled-target switches with captures on the clients'
interfaces (data: both directions of every flow, seen once) and on the store hosts' interfaces
(every RedPlane request and ack, piggybacked packets included):

- workloads: per app, phases of many short TCP flows (testbed.traffic.shortflows, Poisson
  arrivals) of a fixed size and new-flow rate, one phase after the other in one fabric; each
  new flow costs a lease and a replicated write, long flows amortise them;
- lease period: long-lived echoed probe streams through the NAT, lease renewals' share of the
  bytes for several store lease periods (switch lease = --switch-fraction of it);
- snapshot period: the same streams through the count-min sketch in snapshot mode, snapshot
  bytes for several snapshot periods.

Output: a run directory per trial under results/overhead-<time>/ (pcaps, phases.csv), tidy
tables, and results/figures/overhead.png. Bandwidths are those of this emulation (Python
switches, modest rates), so the ratios, not the absolute rates, are the result.

    sudo python experiments/overhead.py           # nat, firewall, lb, counter; 4 workloads; 4 leases; 4 periods
    sudo python experiments/overhead.py --quick   # nat, 2 workloads, 2 leases, 2 snapshot periods
"""
import argparse
import os
import sys
import time

import _env  # noqa: F401  (re-runs with the project's .venv when needed)

import pandas as pd

from analysis import experiments as ax
from analysis import runs
from analysis.plots import draw_bars, draw_lines, panel_figure
from analysis import style
from p4apps.apps import APPS, app_named
from testbed.experiment import (HostTools, experiment_dir, record_figure, require_root, stop_on_sigterm,
                                write_table)
from testbed.net import Testbed
from testbed.redplane.config import RedPlaneSettings
from testbed.runconfig import RunConfig
from testbed.traffic import tool_argv

FLOW_PORT, ECHO_PORT = 6100, 7000


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--apps", default="nat,firewall,lb,counter", help="apps of the workload sweep")
    p.add_argument("--workloads", default="fixed:1000@10,fixed:10000@10,fixed:100000@2,fixed:10000@30",
                   help="DIST@RATE list: flow sizes (shortflows --dist) and new flows/s over all clients")
    p.add_argument("--phase", type=float, default=5.0, help="seconds of new flows per workload phase (default 5)")
    p.add_argument("--leases", default="250,500,1000,2000", help="store lease periods, ms (NAT, probe streams)")
    p.add_argument("--switch-fraction", type=float, default=0.6, help="switch lease / store lease (default 0.6)")
    p.add_argument("--snapshots", default="50,100,200,500", help="snapshot periods, ms (sketch, probe streams)")
    p.add_argument("--probes", type=int, default=4, help="probe streams in the lease and snapshot sweeps")
    p.add_argument("--probe-pps", type=float, default=100.0, help="packets/s per probe stream (default 100)")
    p.add_argument("--lease-ms", type=float, default=1000.0, help="store lease of the workload sweep (default 1000)")
    p.add_argument("--target", default="bundled")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--quick", action="store_true", help="nat only, 2 workloads, 2 leases, 2 periods, 3 s phases")
    args = p.parse_args(argv)
    if args.quick:
        args.apps, args.workloads, args.phase = "nat", "fixed:1000@10,fixed:100000@2", 3.0
        args.leases, args.snapshots = "250,1000", "50,500"
    for name in args.apps.split(","):
        if name not in APPS:
            p.error(f"--apps: unknown app {name!r}")
    args.workload_list = [_workload(p, w) for w in args.workloads.split(",") if w]
    return args


def _workload(p, text: str) -> dict:
    dist, sep, rate = text.rpartition("@")
    try:
        rate = float(rate)
    except ValueError:
        rate = 0
    if not sep or not dist or rate <= 0:
        p.error(f"--workloads: {text!r} is not DIST@RATE (e.g. fixed:1000@10)")
    size = dist.split(":", 1)[1] if dist.startswith("fixed:") else dist
    label = f"{_bytes(size)}, {rate:g}/s" if dist.startswith("fixed:") else f"{dist}, {rate:g}/s"
    return {"name": text, "dist": dist, "rate": rate, "label": label}


def _bytes(size: str) -> str:
    n = int(size)
    return f"{n // 1000} KB" if n >= 1000 and n % 1000 == 0 else f"{n} B"


def captures(topo) -> tuple:
    return tuple(f"{h}-eth0" for h in topo.clients() + topo.stores()[:1])


def config(args, name: str, app: str, lease_ms: float, **extra) -> RunConfig:
    base = RunConfig()
    settings = RedPlaneSettings(lease_ms=lease_ms, switch_lease_ms=lease_ms * args.switch_fraction)
    return RunConfig(name=name, app=app, variant="redplane", target=args.target, redplane=settings,
                     capture=captures(base.topology()), seed=args.seed, **extra)


# -- trials ------------------------------------------------------------------------------------------
def workload_trial(args, exp: str, app_name: str) -> str:
    """One fabric, one phase per workload; phases.csv records each phase's window."""
    app = app_named(app_name)
    cfg = config(args, f"overhead-{app_name}", app_name, args.lease_ms)
    with Testbed(cfg, results_dir=exp) as tb, HostTools(tb) as tools:
        print(f"  {app_name}: fabric up ({tb.run_dir})")
        traffic = _traffic_dir(tb)
        for host in tb.topo.servers():
            tools.start(host, tool_argv("shortflows", "server", port=FLOW_PORT, duration=3600,
                                        log=os.path.join(traffic, f"flows.server.{host}.csv")))
        clients, servers = tb.topo.clients(), tb.topo.servers()
        phases = []
        for k, w in enumerate(args.workload_list):
            start = time.time()
            procs = [tools.start(c, tool_argv("shortflows", "client", dst=app.destination(tb.topo, servers[i % len(servers)]),
                                              port=FLOW_PORT, rate=w["rate"] / len(clients), dist=w["dist"],
                                              duration=args.phase, seed=args.seed * 100 + k * 10 + i, flow_timeout=5,
                                              log=os.path.join(traffic, f"phase{k}.{c}.client.csv")))
                     for i, c in enumerate(clients)]
            tools.wait(procs, timeout=args.phase + 20)
            phases.append({"name": w["name"], "label": w["label"], "start": start, "end": time.time()})
            time.sleep(0.3)                     # keeps the phases' capture windows apart (grace 0.2 s)
        pd.DataFrame(phases).to_csv(os.path.join(tb.run_dir, "phases.csv"), index=False)
        return tb.run_dir


def stream_trial(args, exp: str, name: str, cfg: RunConfig) -> str:
    """Long-lived echoed probe streams for --phase seconds (one phase, 'streams')."""
    with Testbed(cfg, results_dir=exp) as tb, HostTools(tb) as tools:
        print(f"  {name}: fabric up ({tb.run_dir})")
        traffic = _traffic_dir(tb)
        for host in tb.topo.servers():
            tools.start(host, tool_argv("probe", "recv", port=ECHO_PORT, echo=True, duration=3600,
                                        log=os.path.join(traffic, f"echo.server.{host}.csv")))
        clients, servers = tb.topo.clients(), tb.topo.servers()
        app = app_named(cfg.app)
        start = time.time()
        procs = [tools.start(clients[i % len(clients)], tool_argv(
            "probe", "send", dst=app.destination(tb.topo, servers[i % len(servers)]), dport=ECHO_PORT, sport=22000 + i,
            rate=args.probe_pps, duration=args.phase, flow=i + 1, echo=True,
            log=os.path.join(traffic, f"stream{i + 1}.client.csv"))) for i in range(args.probes)]
        tools.wait(procs, timeout=args.phase + 15)
        pd.DataFrame([{"name": "streams", "label": "probe streams", "start": start, "end": time.time()}]).to_csv(
            os.path.join(tb.run_dir, "phases.csv"), index=False)
        return tb.run_dir


def _traffic_dir(tb) -> str:
    path = os.path.join(tb.run_dir, "traffic")
    os.makedirs(path, exist_ok=True)
    return path


# -- analysis (reads only the run directories) ---------------------------------------------------------
def analyse(run_dir: str, sweep: str) -> pd.DataFrame:
    cfg = runs.config(run_dir)
    app = cfg["app"]
    layout = app_named(app).layout
    topo = RunConfig.from_dict(cfg).topology()
    store = runs.client_packets(run_dir, topo.stores()[:1], layout)
    clients = runs.client_packets(run_dir, topo.clients(), layout)
    phases = pd.read_csv(os.path.join(run_dir, "phases.csv"))
    store, clients = ax.phase_packets(store, phases, 0.2), ax.phase_packets(clients, phases, 0.2)
    rows = []
    for _, ph in phases.iterrows():
        row = ax.overhead_row(store[store["phase"] == ph["name"]], clients[clients["phase"] == ph["name"]])
        seconds = ph["end"] - ph["start"]
        rows.append({"sweep": sweep, "app": app, "workload": ph["label"], "lease_ms": cfg["redplane"]["lease_ms"],
                     "snapshot_ms": cfg["snapshot_ms"], "seconds": round(seconds, 2),
                     "rp_kbps": row["rp_bytes"] * 8 / seconds / 1e3, "data_kbps": row["data_bytes"] * 8 / seconds / 1e3,
                     **row, "run": os.path.basename(run_dir)})
    return pd.DataFrame(rows)


def figure(table: pd.DataFrame):
    fig, axes = panel_figure(3, ncols=3)
    work = table[table["sweep"] == "workload"]
    if len(work):
        draw_bars(axes[0], work, x="workload", hue="app", value="ratio", x_kind=None, kind="app")
        axes[0].set_yscale("log")
        axes[0].set_ylim(top=float(work["ratio"].max()) * 6)
        axes[0].set_ylabel(style.axis_label("workload_overhead"))
        axes[0].tick_params(axis="x", labelsize="small", rotation=20)
        axes[0].set_title("Short TCP flows: size, new flows/s", fontsize="medium")
        axes[0].legend(frameon=False, fontsize="x-small", ncol=4, loc="upper center")
    for ax_, sweep, x, title in ((axes[1], "lease", "lease_ms", "Probe streams through the NAT"),
                                 (axes[2], "snapshot", "snapshot_ms", "Probe streams through the sketch")):
        rows = table[table["sweep"] == sweep]
        if len(rows):
            draw_lines(ax_, rows, x=x, y="ratio", hue="app", kind="app")
            ax_.set_xscale("log")
            ax_.minorticks_off()
            ax_.set_xticks(sorted(rows[x].unique()), [f"{v:g}" for v in sorted(rows[x].unique())])
            ax_.legend(frameon=False, fontsize="small")
        ax_.set_xlabel(style.axis_label(x))
        ax_.set_ylabel(style.axis_label("workload_overhead" if sweep == "lease" else "snapshot_overhead"))
        ax_.set_ylim(bottom=0)
        ax_.set_title(title, fontsize="medium")
    fig.tight_layout()
    return fig


def main(argv=None) -> int:
    args = parse_args(argv)
    require_root("overhead.py")
    stop_on_sigterm()
    exp = experiment_dir("overhead")
    print(f"overhead experiment -> {exp}\n  measured: pcaps at the clients' and the store's interfaces, Mininet fabric "
          f"of {args.target} switches")
    tables = []
    for app in args.apps.split(","):
        tables.append(analyse(workload_trial(args, exp, app), "workload"))
    for lease in (float(x) for x in args.leases.split(",") if x):
        cfg = config(args, f"overhead-lease{lease:g}", "nat", lease)
        tables.append(analyse(stream_trial(args, exp, f"nat lease {lease:g} ms", cfg), "lease"))
    for period in (float(x) for x in args.snapshots.split(",") if x):
        cfg = config(args, f"overhead-snapshot{period:g}", "sketch", args.lease_ms, snapshot_ms=period)
        tables.append(analyse(stream_trial(args, exp, f"sketch snapshot {period:g} ms", cfg), "snapshot"))
    table = pd.concat(tables, ignore_index=True)
    write_table(table, exp, "overhead")
    path = record_figure(figure(table), exp, "overhead")
    cols = ["sweep", "app", "workload", "lease_ms", "snapshot_ms", "rp_messages", "rp_bytes", "data_bytes", "ratio",
            "header_ratio", "rp_kbps", "data_kbps"]
    print("\n" + table[cols].round(3).to_string(index=False))
    print("\nratio = RedPlane bytes at the store's interface (requests and acks, wire bytes, piggybacked packets "
          "included) / data bytes at the clients' interfaces (both directions); header_ratio leaves the "
          "piggybacked packets out.")
    print(f"figure: {path}\ntables: {exp}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
