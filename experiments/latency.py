"""Per-packet latency with and without RedPlane, per app, on the Mininet fabric.

Per (app, variant) trial it builds the 2-spine leaf-spine fabric of bundled-target switches and
measures echoed UDP probe round trips (client -> app on a spine -> server -> back), from the
probe senders' own logs (send_ns from the sender's clock, recv_ns the kernel receive timestamp
of the reply): steady probe streams (one long flow each) and, at the same time, many short
probe flows (a few probes each, each flow a new source port, so a new flow for the app). The
first packet of a flow is the one that creates its state (with RedPlane: a lease and a
replicated write before it is released); later packets only read state. The write-centric
counter app (every packet a replicated write) and the sketch in snapshot mode show the two ways
of handling write-heavy state. Absolute times are those of Python switches in Mininet (a few
hundred microseconds per hop), not of hardware; compare variants with each other.

    sudo python experiments/latency.py           # nat, firewall, lb, counter, sketch x redplane, noft
    sudo python experiments/latency.py --quick   # nat x redplane, noft; counter and sketch with RedPlane
"""
import argparse
import os
import sys

import _env  # noqa: F401  (re-runs with the project's .venv when needed)

import pandas as pd

from analysis import experiments as ax
from analysis.plots import bar_panels, cdf_panels
from p4apps.apps import APPS, app_named
from testbed.experiment import (HostTools, experiment_dir, record_figure, require_root, stop_on_sigterm,
                                write_table)
from testbed.net import Testbed
from testbed.redplane.config import RedPlaneSettings
from testbed.runconfig import RunConfig
from testbed.traffic import tool_argv

ECHO_PORT = 7000
STEADY_SPORT, SHORT_SPORT = 21000, 30000


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--apps", default="nat,firewall,lb,counter,sketch", help="comma-separated apps")
    p.add_argument("--variants", default="redplane,noft", help="comma-separated variants (default redplane,noft)")
    p.add_argument("--trials", help="explicit app:variant list (overrides --apps/--variants)")
    p.add_argument("--duration", type=float, default=8.0, help="steady probe streams' duration, s (default 8)")
    p.add_argument("--probes", type=int, default=2, help="steady probe streams per trial (default 2)")
    p.add_argument("--probe-pps", type=float, default=100.0, help="packets/s of each steady stream (default 100)")
    p.add_argument("--short-rounds", type=int, default=12,
                   help="rounds of short flows, one per client each (default 12)")
    p.add_argument("--short-count", type=int, default=5, help="probes per short flow (default 5)")
    p.add_argument("--lease-ms", type=float, default=1000.0, help="store lease period (default 1000)")
    p.add_argument("--switch-lease-ms", type=float, default=600.0, help="switch lease period (default 600)")
    p.add_argument("--target", default="bundled", help="switch target: bundled or bmv2 (default bundled)")
    p.add_argument("--repeats", type=int, default=1,
                   help="runs of every trial, interleaved (default 1; more separate the variants from load noise)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--quick", action="store_true", help="4 short trials (for CI)")
    args = p.parse_args(argv)
    if args.quick:
        args.trials = "nat:redplane,nat:noft,counter:redplane,sketch:redplane"
        args.duration, args.short_rounds = 3.0, 5
    args.pairs = _pairs(p, args)
    return args


def _pairs(p, args) -> list[tuple[str, str]]:
    pairs = ([tuple(t.split(":")) for t in args.trials.split(",")] if args.trials else
             [(a, v) for a in args.apps.split(",") for v in args.variants.split(",")])
    for pair in pairs:
        if len(pair) != 2 or pair[0] not in APPS:
            p.error(f"unknown trial {':'.join(pair)!r} (apps: {', '.join(APPS)})")
    return pairs


def trial_config(args, app: str, variant: str) -> RunConfig:
    return RunConfig(name=f"latency-{app}-{variant}", app=app, variant=variant, target=args.target,
                     redplane=RedPlaneSettings(lease_ms=args.lease_ms, switch_lease_ms=args.switch_lease_ms),
                     seed=args.seed)


def run_trial(args, exp: str, app_name: str, variant: str) -> str:
    """One testbed: echo servers, steady streams, then rounds of short flows alongside."""
    app = app_named(app_name)
    cfg = trial_config(args, app_name, variant)
    with Testbed(cfg, results_dir=exp) as tb, HostTools(tb) as tools:
        print(f"  {app_name}/{variant}: fabric up ({tb.run_dir})")
        traffic = os.path.join(tb.run_dir, "traffic")
        os.makedirs(traffic, exist_ok=True)
        span = args.duration + 30
        for host in tb.topo.servers():
            tools.start(host, tool_argv("probe", "recv", port=ECHO_PORT, echo=True, duration=span,
                                        log=os.path.join(traffic, f"echo.server.{host}.csv")))
        clients, servers = tb.topo.clients(), tb.topo.servers()
        dest = lambda i: app.destination(tb.topo, servers[i % len(servers)])
        steady = [tools.start(clients[i % len(clients)], tool_argv(
            "probe", "send", dst=dest(i), dport=ECHO_PORT, sport=STEADY_SPORT + i, rate=args.probe_pps,
            duration=args.duration, flow=i + 1, echo=True, log=os.path.join(traffic, f"steady{i + 1}.client.csv")))
            for i in range(args.probes)]
        n = 0
        for _ in range(args.short_rounds):
            batch = []
            for client in clients:
                n += 1
                batch.append(tools.start(client, tool_argv(
                    "probe", "send", dst=dest(n), dport=ECHO_PORT, sport=SHORT_SPORT + n, rate=50, count=args.short_count,
                    flow=1000 + n, echo=True, echo_wait=1.0, log=os.path.join(traffic, f"short{n}.client.csv"))))
            tools.wait(batch, timeout=10)
        tools.wait(steady, timeout=args.duration + 15)
        return tb.run_dir


def analyse(run_dir: str, app: str, variant: str) -> pd.DataFrame:
    rtts = ax.first_vs_later(ax.probe_rtts(run_dir))
    rtts["workload"] = rtts["log"].str.rstrip("0123456789")
    return rtts.assign(app=app, variant="snapshot" if (app == "sketch" and variant == "redplane") else variant,
                       run=os.path.basename(run_dir))


def figures(rtts: pd.DataFrame, table: pd.DataFrame):
    later = rtts[rtts["packet"] == "later"]
    cdf = cdf_panels(later, facet="app", hue="variant", value="rtt", facet_kind="app", kind="variant",
                     xlabel="rtt_ms", ncols=3, logx=True)
    panels = [{"value": "p50_ms", "low": "p50_ms", "high": "p90_ms", "ylabel": "median_rtt_ms", "annotate": True,
               "rows": table["packet"] == cls, "title": title}
              for cls, title in (("first", "First packet of a flow (whisker: p90)"),
                                 ("later", "Later packets (whisker: p90)"))]
    bars = bar_panels(table, panels, x="app", hue="variant", x_kind="app", kind="variant", ncols=2)
    return cdf, bars


def main(argv=None) -> int:
    args = parse_args(argv)
    require_root("latency.py")
    stop_on_sigterm()
    exp = experiment_dir("latency")
    print(f"latency experiment -> {exp}\n  measured: probe RTTs from sender logs, Mininet fabric of "
          f"{args.target} switches (Python interpreter)")
    frames = []
    for repeat in range(args.repeats):
        for app, variant in args.pairs:
            run_dir = run_trial(args, exp, app, variant)
            frames.append(analyse(run_dir, app, variant).assign(repeat=repeat))
            f = frames[-1]
            print(f"    {len(f)} replies, median later {f[f['packet'] == 'later']['rtt'].median() * 1e3:.2f} ms, "
                  f"median first {f[f['packet'] == 'first']['rtt'].median() * 1e3:.2f} ms")
    rtts = pd.concat(frames, ignore_index=True)
    table = ax.latency_table(rtts, by=("app", "variant", "packet"))
    sent = rtts.groupby(["app", "variant", "run", "log"])["sent"].first().groupby(["app", "variant"]).sum()
    flows = rtts.groupby(["app", "variant"]).apply(lambda g: len(g[["run", "log"]].drop_duplicates()))
    table["flows"] = [int(flows[(a, v)]) for a, v in zip(table["app"], table["variant"])]
    write_table(rtts, exp, "rtts")
    write_table(table, exp, "latency")
    cdf, bars = figures(rtts, table)
    paths = [record_figure(cdf, exp, "latency"), record_figure(bars, exp, "latency_first_packet")]
    print("\n" + table.to_string(index=False))
    print(f"\nprobes sent per trial: {sent.to_dict()}")
    print("Run-to-run noise of the medians on this shared machine is about 0.2 ms (--repeats interleaves more "
          "runs); the first-packet difference is the store round trips of the lease and the write.")
    print("first = the reply to a flow's first probe (state created: with RedPlane a lease and a replicated "
          "write first); later = every other reply. snapshot = the sketch with RedPlane (bounded-inconsistency "
          "mode); counter with RedPlane replicates every packet.")
    print(f"figures: {', '.join(paths)}\ntables: {exp}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
