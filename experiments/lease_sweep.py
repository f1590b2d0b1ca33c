"""The lease-period trade-off: recovery time after a spine failure vs lease-renewal bandwidth.

For each lease period (the store's; the switch's lease is --switch-fraction of it, so the
switch always gives up first) a failover trial runs on the Mininet fabric of bundled-target
switches, like experiments/failover.py with RedPlane: echoed probe streams and verified TCP
streams through the app, spine s1 crashes mid-way. A flow that used s1 recovers when the
surviving spine obtains its lease, which the store grants only once s1's lease has expired
(the store queues the request, as the protocol's TLA+ model does), so recovery grows with the
lease; renewals keep leases alive and cost bandwidth that shrinks as the lease grows. Recovery
comes from the echoed probes at the clients (analysis.runs.probe_recovery); renewal bandwidth
from the capture at the store host's interface, in the steady state before the failure.

    sudo python experiments/lease_sweep.py           # nat; leases 250, 500, 1000, 2000 ms
    sudo python experiments/lease_sweep.py --quick   # nat; leases 250 and 1000 ms
"""
import argparse
import sys

import _env  # noqa: F401  (re-runs with the project's .venv when needed)

import pandas as pd

from analysis import experiments as ax
from analysis import runs
from analysis.plots import line_panels
from p4apps.apps import APPS, app_named
from testbed.experiment import (experiment_dir, record_figure, require_root, run_trial, stop_on_sigterm,
                                write_table)
from testbed.redplane.config import RedPlaneSettings
from testbed.runconfig import RunConfig
from testbed.workload import default_flows


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--apps", default="nat", help="comma-separated apps (default nat)")
    p.add_argument("--leases", default="250,500,1000,2000", help="store lease periods, ms")
    p.add_argument("--switch-fraction", type=float, default=0.6, help="switch lease / store lease (default 0.6)")
    p.add_argument("--fail-at", type=float, default=4.0, help="crash of s1, s after traffic starts (default 4)")
    p.add_argument("--after", type=float, default=2.5,
                   help="traffic after the failure beyond one lease period, s (default 2.5)")
    p.add_argument("--probes", type=int, default=4, help="echoed probe streams (default 4)")
    p.add_argument("--tcps", type=int, default=2, help="verified TCP streams (default 2)")
    p.add_argument("--probe-pps", type=float, default=200.0, help="packets/s per probe stream (default 200)")
    p.add_argument("--tcp-mbps", type=float, default=1.0, help="Mbit/s per TCP stream (default 1)")
    p.add_argument("--seeds", default="1", help="comma-separated seeds; one trial per seed and lease")
    p.add_argument("--target", default="bundled")
    p.add_argument("--quick", action="store_true", help="leases 250 and 1000 ms, s1 crashes 2.5 s in (for CI)")
    args = p.parse_args(argv)
    if args.quick:
        args.leases, args.fail_at, args.after = "250,1000", 2.5, 1.5
    if not 0 < args.switch_fraction < 1:
        p.error("--switch-fraction must be between 0 and 1")
    for name in args.apps.split(","):
        if name not in APPS:
            p.error(f"--apps: unknown app {name!r}")
    return args


def trial_config(args, app: str, lease: float, seed: int) -> RunConfig:
    topo = RunConfig().topology()
    capture = tuple(f"{h}-eth0" for h in topo.clients() + topo.servers() + topo.stores()[:1])
    return RunConfig(name=f"lease-{app}-{lease:g}ms-seed{seed}", app=app, variant="redplane", target=args.target,
                     redplane=RedPlaneSettings(lease_ms=lease, switch_lease_ms=lease * args.switch_fraction),
                     failures=({"at": args.fail_at, "kind": "switch_crash", "target": "s1"},),
                     capture=capture, seed=seed)


def analyse(run_dir: str, fail_at: float) -> dict:
    """Recovery and renewal bandwidth of one trial, from its run directory only."""
    cfg = runs.config(run_dir)
    topo = RunConfig.from_dict(cfg).topology()
    app = cfg["app"]
    layout = app_named(app).layout
    fail = runs.failure_time(run_dir)
    probes = runs.probe_recovery(runs.client_packets(run_dir, topo.clients(), layout), fail)
    tcp = runs.tcp_flows(run_dir, fail)
    store = runs.client_packets(run_dir, topo.stores()[:1], layout)
    window = max(1.0, fail_at - 1.0)
    return {"app": app, "lease_ms": cfg["redplane"]["lease_ms"], "switch_lease_ms": cfg["redplane"]["switch_lease_ms"],
            "seed": cfg["seed"], **ax.lease_row(probes), **ax.renewal_rate(store, fail - window, fail),
            "tcp_survived": int((tcp["survived"] & tcp["resumed"]).sum()), "tcp_flows": len(tcp), "run": run_dir}


def summarise(rows: pd.DataFrame) -> pd.DataFrame:
    """Per (app, lease): medians over seeds of the trial rows."""
    return rows.groupby(["app", "lease_ms"], as_index=False).agg(
        trials=("seed", "size"), interrupted=("interrupted", "sum"), flows=("flows", "sum"),
        median_recovery_s=("median_recovery_s", "median"), max_recovery_s=("max_recovery_s", "max"),
        min_recovery_s=("median_recovery_s", "min"), renewals_per_s=("renewals_per_s", "median"),
        renewal_kbps=("renewal_kbps", "median"), tcp_survived=("tcp_survived", "sum"), tcp_flows=("tcp_flows", "sum"))


def figure(summary: pd.DataFrame):
    return line_panels(summary, [
        {"x": "lease_ms", "y": "median_recovery_s", "low": "min_recovery_s", "high": "max_recovery_s",
         "xlabel": "lease_ms", "ylabel": "recovery_time_s", "title": "Recovery (median; band: to the slowest flow)",
         "reference": [(x, x / 1000) for x in sorted(summary["lease_ms"].unique())],
         "reference_label": "one store lease period"},
        {"x": "lease_ms", "y": "renewal_kbps", "xlabel": "lease_ms", "ylabel": "renewal_kbps",
         "title": "Lease renewals before the failure"}], hue="app", kind="app", ncols=2)


def main(argv=None) -> int:
    args = parse_args(argv)
    require_root("lease_sweep.py")
    stop_on_sigterm()
    exp = experiment_dir("lease_sweep")
    print(f"lease sweep -> {exp}\n  measured: failover trials on the Mininet fabric of {args.target} switches; "
          f"pcaps at clients, servers and the store")
    rows = []
    for app_name in args.apps.split(","):
        app = app_named(app_name)
        for lease in (float(x) for x in args.leases.split(",")):
            for seed in (int(s) for s in args.seeds.split(",")):
                cfg = trial_config(args, app_name, lease, seed)
                flows = default_flows(cfg.topology(), probes=args.probes, tcps=args.tcps, probe_pps=args.probe_pps,
                                      tcp_mbps=args.tcp_mbps)
                duration = args.fail_at + lease / 1000 + args.after
                trial = run_trial(cfg, flows, duration, exp, app)
                rows.append(analyse(trial.run_dir, args.fail_at))
                r = rows[-1]
                print(f"    lease {lease:g} ms: {r['interrupted']}/{r['flows']} probe flows interrupted, median "
                      f"recovery {r['median_recovery_s']:.3f} s, renewals {r['renewal_kbps']:.1f} kbit/s, "
                      f"TCP survived {r['tcp_survived']}/{r['tcp_flows']}")
    trials = pd.DataFrame(rows)
    summary = summarise(trials)
    write_table(trials, exp, "trials")
    write_table(summary, exp, "lease_sweep")
    path = record_figure(figure(summary), exp, "lease_sweep")
    print("\n" + summary.round(3).to_string(index=False))
    print("\nrecovery: crash of s1 to the first echoed probe after it, over the probe flows the crash interrupted;")
    print("renewal traffic: LEASE_RENEW (seq 0) requests and their acks at the store's interface, wire bits/s, "
          "in the steady state before the crash.")
    print(f"figure: {path}\ntables: {exp}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
