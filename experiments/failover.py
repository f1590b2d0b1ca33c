"""The main job: connectivity recovery after a spine failure, RedPlane vs no fault tolerance vs
S1 checkpoint-recovery, for each stateful app.

Per (app, variant) it builds the 2-spine leaf-spine fabric, runs echoed UDP probe streams and
verified TCP streams from the clients through the app to the servers, crashes spine s1 in the
middle, and reports per flow whether and for how long it was interrupted, and whether each TCP
connection survived (no reset, every byte delivered). Output: a run directory per trial under
results/failover-<time>/, tidy tables (probes.csv, tcp.csv, timeline.csv, tcp_timeline.csv,
summary.csv) and the figure results/figures/failover.png: per app, echoed probes per second
(top) and the goodput of the TCP connections through s1 (bottom) around the failure.

    sudo python experiments/failover.py            # nat, firewall, lb x redplane, noft, s1
    sudo python experiments/failover.py --quick    # nat only, redplane and noft, shorter
    sudo python experiments/failover.py --quick --apps demote --variants redplane   # quick, other apps
"""
import argparse
import sys

import _env  # noqa: F401  (re-runs with the project's .venv when needed)

import pandas as pd

from analysis import runs
from analysis.plots import failover_figure
from p4apps.apps import app_named
from testbed.experiment import (experiment_dir, record_figure, require_root, run_trial, stop_on_sigterm,
                                write_table)
from testbed.redplane.config import RedPlaneSettings
from testbed.runconfig import RunConfig
from testbed.workload import default_flows, pin_tcp_paths


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog="See README.md for what the numbers mean.")
    p.add_argument("--apps", help="comma-separated apps (default nat,firewall,lb; with --quick nat)")
    p.add_argument("--variants", help="comma-separated variants (default redplane,noft,s1; with --quick redplane,noft)")
    p.add_argument("--duration", type=float, default=10.0, help="traffic duration per trial, s (default 10)")
    p.add_argument("--fail-at", type=float, default=4.0, help="when spine s1 crashes, s after traffic starts (default 4)")
    p.add_argument("--lease-ms", type=float, default=1000.0, help="store lease period (default 1000)")
    p.add_argument("--switch-lease-ms", type=float, default=600.0, help="switch lease period (default 600)")
    p.add_argument("--probes", type=int, default=4, help="echoed UDP probe streams per trial (default 4)")
    p.add_argument("--tcps", type=int, default=4, help="verified TCP streams per trial (default 4)")
    p.add_argument("--probe-pps", type=float, default=200.0, help="packets/s of each probe stream (default 200)")
    p.add_argument("--tcp-mbps", type=float, default=2.0, help="rate of each TCP stream, Mbit/s (default 2)")
    p.add_argument("--target", default="bundled", help="switch target: bundled or bmv2 (default bundled)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--quick", action="store_true",
                   help="6 s trials; nat only and redplane,noft unless --apps/--variants say otherwise (for CI)")
    args = p.parse_args(argv)
    if args.quick:
        args.apps, args.variants = args.apps or "nat", args.variants or "redplane,noft"
        args.duration, args.fail_at = 6.0, 2.5
    args.apps, args.variants = args.apps or "nat,firewall,lb", args.variants or "redplane,noft,s1"
    if not 0 < args.fail_at < args.duration:
        p.error("--fail-at must be within the trial's duration")
    return args


def trial_config(args, app: str, variant: str) -> RunConfig:
    return RunConfig(name=f"failover-{app}-{variant}", app=app, variant=variant, target=args.target,
                     redplane=RedPlaneSettings(lease_ms=args.lease_ms, switch_lease_ms=args.switch_lease_ms),
                     failures=({"at": args.fail_at, "kind": "switch_crash", "target": "s1"},),
                     capture=("h1-eth0", "h2-eth0", "h3-eth0", "h4-eth0"), seed=args.seed)


def analyse(trial, app: str, variant: str):
    fail = runs.failure_time(trial.run_dir)
    packets = runs.client_packets(trial.run_dir, ["h1", "h2"], app)
    at_servers = runs.client_packets(trial.run_dir, ["h3", "h4"], app)
    probes = runs.probe_recovery(packets, fail).assign(app=app, variant=variant)
    probes["sources_seen"] = probes["flow"].map(runs.probe_sources(at_servers))
    tcp = runs.tcp_flows(trial.run_dir, fail).assign(app=app, variant=variant)
    spines = runs.flow_spines(trial.run_dir, packets, at_servers)
    tcp["spines"] = tcp["flow"].map(lambda f: "+".join(sorted(spines.get(f, ()))))
    tcp["affected"] = tcp["spines"].str.contains("s1")
    timeline = runs.reply_timeline(packets, fail).assign(app=app, variant=variant)
    tcp_timeline = runs.tcp_goodput_timeline(trial.run_dir, fail, tcp.loc[tcp["affected"], "flow"])
    return probes, tcp, timeline, tcp_timeline.assign(app=app, variant=variant)


def summarise(probes: pd.DataFrame, tcp: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for (app, variant), p in probes.groupby(["app", "variant"], sort=False):
        hit = p[p["interrupted"]]
        t = tcp[(tcp["app"] == app) & (tcp["variant"] == variant)]
        a = t[t["affected"]]
        rows.append({"app": app, "variant": variant, "probe_flows": len(p), "interrupted": len(hit),
                     "remapped": int((p["sources_seen"] > 1).sum()),
                     "median_recovery_s": round(float(hit["recovery_s"].median()), 3) if len(hit) else 0.0,
                     "max_recovery_s": round(float(hit["recovery_s"].max()), 3) if len(hit) else 0.0,
                     "tcp_survived": f"{int((t['survived'] & t['resumed']).sum())}/{len(t)}",
                     "tcp_on_s1_survived": f"{int((a['survived'] & a['resumed']).sum())}/{len(a)}",
                     "tcp_on_s1_max_stall_s": round(float(t.loc[t["affected"], "stall_s"].max()), 2)
                     if t["affected"].any() else 0.0})
    return pd.DataFrame(rows)


def main(argv=None) -> int:
    args = parse_args(argv)
    require_root("failover.py")
    stop_on_sigterm()
    exp = experiment_dir("failover")
    print(f"failover experiment -> {exp}")
    all_probes, all_tcp, all_tl, all_tcp_tl = [], [], [], []
    for app_name in args.apps.split(","):
        app = app_named(app_name)
        for variant in args.variants.split(","):
            config = trial_config(args, app_name, variant)
            flows = default_flows(config.topology(), probes=args.probes, tcps=args.tcps, probe_pps=args.probe_pps,
                                  tcp_mbps=args.tcp_mbps)
            flows = pin_tcp_paths(flows, config.topology(), app, variant)      # half the TCP flows via s1
            trial = run_trial(config, flows, args.duration, exp, app)
            probes, tcp, tl, tcp_tl = analyse(trial, app_name, variant)
            all_probes.append(probes), all_tcp.append(tcp), all_tl.append(tl), all_tcp_tl.append(tcp_tl)
            print(f"  {app_name}/{variant}: {int(probes['interrupted'].sum())} of {len(probes)} probe flows "
                  f"interrupted, TCP survived {int((tcp['survived'] & tcp['resumed']).sum())}/{len(tcp)}")
    probes, tcp, timeline, tcp_timeline = (pd.concat(x, ignore_index=True)
                                           for x in (all_probes, all_tcp, all_tl, all_tcp_tl))
    summary = summarise(probes, tcp)
    for df, name in ((probes, "probes"), (tcp, "tcp"), (timeline, "timeline"), (tcp_timeline, "tcp_timeline"),
                     (summary, "summary")):
        write_table(df, exp, name)
    fig = failover_figure(timeline, tcp_timeline)
    path = record_figure(fig, exp, "failover")
    print("\n" + summary.to_string(index=False))
    print("\nrecovery: time from the crash of s1 to the first echoed probe after it, for the flows it interrupted;")
    print("remapped: probe flows the servers saw from more than one source endpoint (a NAT mapping lost);")
    print("tcp_on_s1: TCP connections with a direction through s1, survived = no reset, every byte delivered and")
    print("  delivering again after the crash;")
    print("max_stall: the longest time one of them delivered nothing after the crash (to the end if it never resumed)")
    print(f"figure: {path}\ntables: {exp}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
