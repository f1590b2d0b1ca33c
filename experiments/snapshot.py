"""Bounded inconsistency: the count-min sketch's counts lost when a spine fails, vs the snapshot
period, on the Mininet fabric.

Per trial the sketch runs on both spines of the fabric (bundled-target switches) in RedPlane's
snapshot mode: each spine's agent injects snapshot triggers every period and the data plane
sends its sketch to the store. Known UDP probe streams (one direction, a fixed rate, source
ports chosen so that half of the flows cross s1 and the sketch separates every flow from the
others, so hash collisions do not blur the result) run through the fabric; spine s1 crashes
mid-way; once routing has moved the flows to s2 the controller injects the restore triggers
(testbed.redplane.agent.restore_triggers) on s2's CPU port (Testbed.inject), and s2 adds s1's
last snapshot to its sketch. At the end, s2's registers are read over its CLI and each flow's
count-min estimate is compared with the packets the server received: lost = delivered -
estimate, the counts of s1's flows since its last snapshot. The bound is rate x period, plus
up to one more period for the columns of a snapshot that the crash interrupted half-sent (each
column is consistent on its own) and the time a snapshot takes to reach the store. A trial without fault tolerance
(noft, no snapshots) loses all of s1's counts. Timing is real (Mininet), so each trial samples
one crash phase within the period; use several --seeds for a distribution.

    sudo python experiments/snapshot.py           # periods 50, 100, 200, 500 ms x seeds 1, 2; plus noft
    sudo python experiments/snapshot.py --quick   # periods 100 and 500 ms, one seed
"""
import argparse
import json
import os
import sys
import time

import _env  # noqa: F401  (re-runs with the project's .venv when needed)

import pandas as pd

from analysis import experiments as ax
from analysis import runs
from analysis.plots import line_panels
from p4apps.apps import app_named
from testbed.experiment import (HostTools, experiment_dir, record_figure, require_root, save_json,
                                stop_on_sigterm, write_table)
from testbed.liveness import parse_register_dump
from testbed.net import Testbed
from testbed.redplane.agent import restore_triggers
from testbed.routing import path_spine
from testbed.runconfig import RunConfig
from testbed.traffic import tool_argv

PORT = 7100
FAILED, SURVIVOR = "s1", "s2"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--periods", default="50,100,200,500", help="snapshot periods, ms")
    p.add_argument("--seeds", default="1,2", help="comma-separated seeds: one trial per period and seed")
    p.add_argument("--noft", action=argparse.BooleanOptionalAction, default=True,
                   help="also one trial without fault tolerance (default: yes)")
    p.add_argument("--flows", type=int, default=8, help="probe streams, half through s1 (default 8)")
    p.add_argument("--rate", type=float, default=100.0, help="packets/s per stream (default 100)")
    p.add_argument("--fail-at", type=float, default=3.0, help="crash of s1, s after traffic starts (default 3)")
    p.add_argument("--after", type=float, default=1.5, help="traffic after the crash, s (default 1.5)")
    p.add_argument("--target", default="bundled")
    p.add_argument("--quick", action="store_true", help="periods 100 and 500 ms, one seed, no noft trial")
    args = p.parse_args(argv)
    if args.quick:
        args.periods, args.seeds, args.noft, args.fail_at = "100,500", "1", False, 2.0
    return args


def trials(args) -> list[tuple[str, float, int]]:
    out = [("redplane", float(p), int(s)) for p in args.periods.split(",") for s in args.seeds.split(",")]
    if args.noft:
        out.append(("noft", 0.0, 1))
    return out


def trial_config(args, variant: str, period: float, seed: int) -> RunConfig:
    return RunConfig(name=f"snapshot-{variant}-{period:g}ms-seed{seed}", app="sketch", variant=variant,
                     target=args.target, snapshot_ms=period if period > 0 else 100.0, seed=seed,
                     failures=({"at": args.fail_at, "kind": "switch_crash", "target": FAILED},))


def plan_flows(topo, n: int, seed: int) -> list[dict]:
    """n one-way UDP flows client -> server, alternately through s1 and s2 (by the ECMP hash),
    with source ports chosen so that the count-min sketch separates them (`separable`): the
    estimate of every flow is then exact unless counts were lost."""
    clients, servers = topo.clients(), topo.servers()
    sketch = app_named("sketch")
    flows, sport = [], 40000 + 100 * seed
    for i in range(n):
        src, dst = topo.ip_of(clients[i % len(clients)]), topo.ip_of(servers[i % len(servers)])
        want = FAILED if i % 2 == 0 else SURVIVOR
        while True:
            sport += 1
            cols = sketch.columns(src, dst, 17, sport, PORT)
            if path_spine(topo, src, dst, 17, sport, PORT) == want and separable([f["columns"] for f in flows] + [cols]):
                break
        flows.append({"flow": i + 1, "client": clients[i % len(clients)], "server": servers[i % len(servers)],
                      "src": src, "dst": dst, "sport": sport, "dport": PORT, "spine": want, "columns": cols})
    return flows


def separable(columns: list[list[int]]) -> bool:
    """Every flow has a row where no other flow shares its column."""
    return all(any(all(other[r] != cols[r] for j, other in enumerate(columns) if j != i) for r in range(len(cols)))
               for i, cols in enumerate(columns))


def run_trial(args, exp: str, variant: str, period: float, seed: int) -> str:
    cfg = trial_config(args, variant, period, seed)
    with Testbed(cfg, results_dir=exp) as tb, HostTools(tb) as tools:
        print(f"  {variant} period {period:g} ms seed {seed}: fabric up ({tb.run_dir})")
        traffic = os.path.join(tb.run_dir, "traffic")
        os.makedirs(traffic, exist_ok=True)
        flows = plan_flows(tb.topo, args.flows, seed)
        with open(os.path.join(traffic, "flows.json"), "w") as f:
            json.dump(flows, f, indent=1)
        for host in tb.topo.servers():
            tools.start(host, tool_argv("probe", "recv", port=PORT, duration=3600,
                                        log=os.path.join(traffic, f"sink.server.{host}.csv")))
        duration = args.fail_at + args.after
        senders = [tools.start(f["client"], tool_argv("probe", "send", dst=f["dst"], dport=PORT, sport=f["sport"],
                                                      rate=args.rate, duration=duration, flow=f["flow"],
                                                      log=os.path.join(traffic, f"flow{f['flow']}.client.csv")))
                   for f in flows]
        tb.play_failures()
        restore = restore_after_failover(tb)
        tools.wait(senders, timeout=duration + 15)
        registers = settled_registers(tb)
        save_json(tb.run_dir, "restore", restore)
        save_json(tb.run_dir, "registers", {SURVIVOR: registers})
        return tb.run_dir


def restore_after_failover(tb, timeout: float = 15.0) -> dict:
    """Wait until routing has taken s1 out, then ask s2 to restore s1's last snapshot."""
    deadline = time.monotonic() + timeout
    while FAILED not in tb.routing.view.down_switches:
        if time.monotonic() > deadline:
            raise RuntimeError(f"routing did not notice the crash of {FAILED} within {timeout} s")
        time.sleep(0.01)
    detected = time.time()
    for frame in restore_triggers(tb.topo.node(FAILED).index):
        tb.inject(SURVIVOR, frame)
    return {"detected_wall": detected, "restore_injected_wall": time.time(), "failed": FAILED, "survivor": SURVIVOR}


def read_sketch(tb) -> dict:
    sw = tb.switch(SURVIVOR)
    return {name: list(parse_register_dump(sw.cli(f"register_read {name}")).values()) for name in ("sk_cnt", "sk_base")}


def settled_registers(tb, timeout: float = 10.0) -> dict:
    """s2's sketch once every count has settled: two reads 0.3 s apart with the same totals
    (a snapshot folding counts between the two register reads would otherwise skew one)."""
    deadline = time.monotonic() + timeout
    last = read_sketch(tb)
    while time.monotonic() < deadline:
        time.sleep(0.3)
        now = read_sketch(tb)
        if _estimate_cells(now) == _estimate_cells(last):
            return now
        last = now
    return last


def _estimate_cells(regs: dict) -> list[int]:
    cells = len(regs["sk_base"])
    return [regs["sk_base"][i] + regs["sk_cnt"][i] + regs["sk_cnt"][cells + i] for i in range(cells)]


# -- analysis (reads only the run directory) -------------------------------------------------------
def analyse(run_dir: str, rate: float) -> pd.DataFrame:
    cfg = runs.config(run_dir)
    app = app_named("sketch")
    flows = pd.DataFrame(json.load(open(os.path.join(run_dir, "traffic", "flows.json"))))
    delivered = ax.delivered_probes(run_dir)
    flows["packets"] = flows["flow"].map(delivered).fillna(0).astype(int)
    regs = ax.read_json(run_dir, "registers")[SURVIVOR]
    estimates = {f["flow"]: app.estimate(regs["sk_cnt"], regs["sk_base"], (f["src"], f["dst"], 17, f["sport"], f["dport"]))
                 for _, f in flows.iterrows()}
    out = ax.sketch_errors(flows[["flow", "packets", "spine"]], estimates, {FAILED})
    variant = cfg["variant"]
    return out.assign(variant="snapshot" if variant == "redplane" else variant,
                      snapshot_ms=cfg["snapshot_ms"] if variant == "redplane" else float("nan"),
                      seed=cfg["seed"], rate=rate, lost_ms=out["lost"] / rate * 1e3, run=os.path.basename(run_dir))


def summarise(errors: pd.DataFrame) -> pd.DataFrame:
    hit = errors[errors["on_failed"]]
    out = hit.groupby(["variant", "snapshot_ms"], dropna=False, as_index=False).agg(
        trials=("seed", "nunique"), flows=("flow", "size"), delivered=("packets", "sum"),
        lost_median=("lost", "median"), lost_min=("lost", "min"), lost_max=("lost", "max"),
        lost_fraction=("lost_fraction", "median"), lost_ms_median=("lost_ms", "median"))
    other = errors[~errors["on_failed"]].groupby(["variant", "snapshot_ms"], dropna=False)["lost"].agg(
        lambda s: int(s.abs().max()) if len(s) else 0)
    out["survivor_flows_max_abs_error"] = [other.get((v, p), 0) for v, p in zip(out["variant"], out["snapshot_ms"])]
    out["bound"] = out["snapshot_ms"] / 1e3 * errors["rate"].iloc[0]
    return out


def figure(summary: pd.DataFrame):
    snap = summary[summary["variant"] == "snapshot"]
    noft = summary[summary["variant"] == "noft"]
    panel = {"x": "snapshot_ms", "y": "lost_median", "low": "lost_min", "high": "lost_max", "xlabel": "snapshot_ms",
             "ylabel": "counts_lost", "hue": "variant", "kind": "variant",
             "title": "Sketch counts of the failed spine's flows lost (band: min-max)",
             "reference": list(zip(snap["snapshot_ms"], snap["bound"])), "reference_label": "rate x period"}
    if len(noft):
        panel["title"] += f"\nwithout FT every count s1 made is lost: median {noft['lost_median'].iloc[0]:.0f} per flow"
    return line_panels(snap, [panel], ncols=1)


def main(argv=None) -> int:
    args = parse_args(argv)
    require_root("snapshot.py")
    stop_on_sigterm()
    exp = experiment_dir("snapshot")
    print(f"snapshot experiment -> {exp}\n  measured: Mininet fabric of {args.target} switches; spine registers read "
          f"over the switch CLI; delivered packets from the receivers' logs")
    frames = []
    for variant, period, seed in trials(args):
        run_dir = run_trial(args, exp, variant, period, seed)
        frames.append(analyse(run_dir, args.rate))
        hit = frames[-1][frames[-1]["on_failed"]]
        print(f"    s1's flows: delivered {hit['packets'].tolist()}, lost {hit['lost'].astype(int).tolist()}")
    errors = pd.concat(frames, ignore_index=True)
    summary = summarise(errors)
    write_table(errors, exp, "errors")
    write_table(summary, exp, "snapshot")
    path = record_figure(figure(summary), exp, "snapshot")
    print("\n" + summary.round(3).to_string(index=False))
    print(f"\nlost = packets delivered - s2's count-min estimate after restoring s1's last snapshot, for the flows "
          f"that crossed s1; bound = rate ({args.rate:g}/s) x period (a crash in the middle of sending a snapshot "
          f"can add up to one more period, and a snapshot's trip to the store adds its delay); noft counts only "
          f"what s1 counted before the crash. survivor_flows_max_abs_error: the same for flows on s2 (zero: the "
          f"flows were chosen so that the sketch separates them).")
    print(f"figure: {path}\ntables: {exp}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
