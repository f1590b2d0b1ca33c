"""A state-store replica fails during traffic: connections survive, no acknowledged write is lost,
and the switches are re-pointed at the chain's new head.

Per trial: the Mininet fabric of bundled-target switches runs the app with RedPlane and one
store shard whose chain has 2 or 3 replicas (on distinct store hosts); echoed probe streams and
verified TCP streams run from the clients to the servers, and short probe flows (each a new
flow, so a new lease and a replicated write) start all the time, so that writes are in flight
when the head, middle or tail replica is killed (the testbed's chain master then removes it and
re-points the switches if the head changed). Evidence, all from the run directory: TCP
survival (the verified streams' logs), probe interruptions (pcaps at the clients), every
write the store acknowledged (RENEW_ACKs with a sequence number, captured at every store
host's interface) against the surviving replicas' final state (dumped over their control
sockets), and the spines' shard table after the failure.

    sudo python experiments/store_failure.py           # chains of 2 (head, tail) and 3 (head, middle, tail)
    sudo python experiments/store_failure.py --quick   # chain of 2, head crashed
"""
import argparse
import os
import sys
import time

import _env  # noqa: F401  (re-runs with the project's .venv when needed)

import pandas as pd

from analysis import experiments as ax
from analysis import runs
from analysis.plots import timeline_panels
from p4apps.apps import APPS, app_named
from testbed.experiment import (HostTools, experiment_dir, record_figure, require_root, save_json,
                                stop_on_sigterm, write_table)
from testbed.net import Testbed
from testbed.runconfig import RunConfig, StoreSpec
from testbed.topology import FabricSpec
from testbed.traffic import tool_argv
from testbed.workload import WorkloadRun, default_flows

SHORT_PORT, SHORT_SPORT = 7500, 31000
POSITIONS = {"head": 0, "middle": 1, "tail": -1}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cases", default="2:head,2:tail,3:head,3:middle,3:tail",
                   help="REPLICAS:POSITION list (position head, middle or tail)")
    p.add_argument("--app", default="nat", help="app (default nat)")
    p.add_argument("--duration", type=float, default=8.0, help="traffic duration, s (default 8)")
    p.add_argument("--fail-at", type=float, default=3.0, help="replica crash, s after traffic starts (default 3)")
    p.add_argument("--probes", type=int, default=2, help="echoed probe streams (default 2)")
    p.add_argument("--tcps", type=int, default=2, help="verified TCP streams (default 2)")
    p.add_argument("--probe-pps", type=float, default=100.0)
    p.add_argument("--tcp-mbps", type=float, default=1.0)
    p.add_argument("--lease-ms", type=float, default=1000.0)
    p.add_argument("--target", default="bundled")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--quick", action="store_true", help="chain of 2 replicas, head crashed, 5 s (for CI)")
    args = p.parse_args(argv)
    if args.quick:
        args.cases, args.duration, args.fail_at = "2:head", 5.0, 2.0
    if args.app not in APPS or APPS[args.app].snapshot_mode:
        p.error(f"--app: must be a linearizable-mode app, got {args.app!r}")
    args.case_list = []
    for case in args.cases.split(","):
        n, _, pos = case.partition(":")
        if not n.isdigit() or int(n) < 2 or pos not in POSITIONS or (pos == "middle" and int(n) < 3):
            p.error(f"--cases: {case!r} is not REPLICAS:POSITION with 2+ replicas (3+ for middle)")
        args.case_list.append((int(n), pos))
    return args


def trial_config(args, replicas: int, position: str) -> RunConfig:
    fabric = FabricSpec(hosts_per_leaf=max(2, replicas))
    topo = RunConfig(fabric=fabric).topology()
    stores = StoreSpec(shards=1, replicas=replicas)
    victim = stores.chains(topo)[0][POSITIONS[position]]
    capture = tuple(f"{h}-eth0" for h in topo.clients() + topo.stores()[:replicas])
    from testbed.redplane.config import RedPlaneSettings
    return RunConfig(name=f"store-{replicas}-{position}", fabric=fabric, app=args.app, variant="redplane",
                     target=args.target, stores=stores, capture=capture, seed=args.seed,
                     redplane=RedPlaneSettings(lease_ms=args.lease_ms, switch_lease_ms=args.lease_ms * 0.6),
                     failures=({"at": args.fail_at, "kind": "store_crash", "target": victim},))


def run_trial(args, exp: str, replicas: int, position: str) -> str:
    cfg = trial_config(args, replicas, position)
    app = app_named(args.app)
    with Testbed(cfg, results_dir=exp) as tb, HostTools(tb) as tools:
        print(f"  chain of {replicas}, {position} crashed: fabric up ({tb.run_dir})")
        save_json(tb.run_dir, "chains_before", _chains(tb))
        flows = default_flows(tb.topo, probes=args.probes, tcps=args.tcps, probe_pps=args.probe_pps,
                              tcp_mbps=args.tcp_mbps)
        workload = WorkloadRun(tb, flows, args.duration, lambda f: app.destination(tb.topo, f.server)).start()
        start = time.monotonic()
        tb.play_failures()
        short_flows(tb, tools, app, start + args.duration)
        workload.wait()
        save_json(tb.run_dir, "chains_after", _chains(tb))
        save_json(tb.run_dir, "store_dumps", {r.name: r.command("dump")["keys"] for c in tb.stores.chains for r in c})
        save_json(tb.run_dir, "shard_tables", {s: tb.switch(s).cli("table_dump rp_shards") for s in tb.topo.spines()})
        return tb.run_dir


def short_flows(tb, tools, app, until: float) -> None:
    """Rounds of short echoed probe flows (one per client, each a new source port) until `until`."""
    traffic = os.path.join(tb.run_dir, "traffic")
    for host in tb.topo.servers():
        tools.start(host, tool_argv("probe", "recv", port=SHORT_PORT, echo=True, duration=3600,
                                    log=os.path.join(traffic, f"short.server.{host}.csv")))
    clients, servers = tb.topo.clients(), tb.topo.servers()
    n = 0
    while time.monotonic() < until:
        batch = []
        for client in clients:
            n += 1
            batch.append(tools.start(client, tool_argv(
                "probe", "send", dst=app.destination(tb.topo, servers[n % len(servers)]), dport=SHORT_PORT,
                sport=SHORT_SPORT + n, rate=50, count=3, flow=2000 + n, echo=True, echo_wait=2.0,
                log=os.path.join(traffic, f"short{n}.client.csv"))))
        tools.wait(batch, timeout=10)


def _chains(tb) -> dict:
    return {"chains": [[{"name": r.name, "host": r.host.name, "ip": r.ip} for r in chain] for chain in tb.stores.chains],
            "events": [list(e) for e in tb.stores.events], "time": time.time()}


# -- analysis (reads only the run directory) -------------------------------------------------------
def analyse(run_dir: str) -> tuple[dict, pd.DataFrame]:
    cfg = runs.config(run_dir)
    topo = RunConfig.from_dict(cfg).topology()
    layout = app_named(cfg["app"]).layout
    fail = runs.failure_time(run_dir, "store_crash")
    victim = cfg["failures"][0]["target"]
    clients = runs.client_packets(run_dir, topo.clients(), layout)
    steady = clients[clients["probe_flow"].isna() | (clients["probe_flow"] < 1000)]   # short flows are 2001+
    probes = runs.probe_recovery(steady, fail)
    tcp = runs.tcp_flows(run_dir, fail)
    store = runs.client_packets(run_dir, topo.stores()[:cfg["stores"]["replicas"]], layout)
    acked = ax.acked_writes(store)
    dumps = ax.read_json(run_dir, "store_dumps")
    lost = ax.lost_writes(acked, dumps)
    after = ax.read_json(run_dir, "chains_after")["chains"][0]
    heads = {s: ax.shard_heads(text) for s, text in ax.read_json(run_dir, "shard_tables").items()}
    short = ax.first_vs_later(ax.probe_rtts(run_dir, "short*.client.csv"))
    short_logs = short.groupby("log").size()
    first = short[short["packet"] == "first"]
    before, near = first[first["send_ns"] / 1e9 < fail], first[(first["send_ns"] / 1e9 - fail).between(0, 1)]
    n_short = len([f for f in os.listdir(os.path.join(run_dir, "traffic")) if f.startswith("short") and "client" in f])
    replicas = cfg["stores"]["replicas"]
    position = cfg["name"].rsplit("-", 1)[-1]
    row = {"replicas": replicas, "crashed": position, "victim": victim,
           "tcp_survived": f"{int((tcp['survived'] & tcp['resumed']).sum())}/{len(tcp)}",
           "probe_flows_interrupted": f"{int(probes['interrupted'].sum())}/{len(probes)}",
           "max_interruption_s": round(float(probes["gap_s"].max()), 3) if len(probes) else 0.0,
           "short_flows_answered": f"{int((short_logs > 0).sum())}/{n_short}",
           "first_rtt_ms_before": round(float(before["rtt"].median()) * 1e3, 2) if len(before) else None,
           "first_rtt_ms_max_1s_after": round(float(near["rtt"].max()) * 1e3, 2) if len(near) else None,
           "writes_acked": len(acked), "writes_acked_after_crash": int((acked["last_ack"] > fail).sum()),
           "acked_writes_lost": int(lost["lost"].sum()),
           "chain_after": "->".join(r["host"] for r in after),
           "switches_point_at_head": all(h == [after[0]["ip"]] for h in heads.values()),
           "run": os.path.basename(run_dir)}
    label = f"chain of {replicas}, {position} ({victim}) crashed"
    tl = runs.reply_timeline(steady, fail).assign(trial=label, series=f"chain{replicas}")
    tl = tl[tl["t"] < tl["t"].max() - 0.25]               # the last bins: the streams ending
    return row, tl


def main(argv=None) -> int:
    args = parse_args(argv)
    require_root("store_failure.py")
    stop_on_sigterm()
    exp = experiment_dir("store_failure")
    print(f"store failure experiment -> {exp}\n  measured: Mininet fabric of {args.target} switches; pcaps at the "
          f"clients and every store host; store dumps over the replicas' control sockets")
    rows, timelines = [], []
    for replicas, position in args.case_list:
        row, tl = analyse(run_trial(args, exp, replicas, position))
        rows.append(row), timelines.append(tl)
        print(f"    TCP survived {row['tcp_survived']}, acked writes {row['writes_acked']} "
              f"(lost {row['acked_writes_lost']}), chain now {row['chain_after']}, "
              f"switches re-pointed: {row['switches_point_at_head']}")
    summary = pd.DataFrame(rows)
    timeline = pd.concat(timelines, ignore_index=True)
    write_table(summary, exp, "store_failure")
    write_table(timeline, exp, "timeline")
    fig = timeline_panels(timeline, facet="trial", hue="series", value="pps", facet_kind=None, kind="variant",
                          xlabel="time_since_store_crash", ylabel="probe_rate", ncols=3)
    path = record_figure(fig, exp, "store_failure")
    print("\n" + summary.drop(columns=["run"]).to_string(index=False))
    print("\nwrites_acked: keys with a write acknowledged (RENEW_ACK, seq != 0) at a store host's interface; "
          "acked_writes_lost: of those, keys whose committed seq on a surviving replica is older than the acked one;")
    print("first_rtt_ms: RTT of short flows' first probes (a lease and a replicated write each), median before the "
          "crash and the largest in the second after it; switches_point_at_head: every spine's rp_shards entry "
          "holds the head of the repaired chain.")
    print(f"figure: {path}\ntables: {exp}")
    bad = summary[(summary["acked_writes_lost"] > 0) | ~summary["switches_point_at_head"].astype(bool)]
    for _, r in bad.iterrows():
        print(f"VIOLATION: chain of {r['replicas']}, {r['crashed']} crashed: {r['acked_writes_lost']} acknowledged "
              f"writes lost, switches re-pointed: {r['switches_point_at_head']} (run {r['run']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
