"""What every experiment script shares: root and signal handling, the experiment directory,
and one trial (a Testbed, a workload and a failure timeline, from start to teardown).

An experiment directory results/<experiment>-<time>/ holds one run directory per trial (each
with its provenance, pcaps, logs and tool output), the experiment's tidy tables, and its
figures; `record_figure` also copies each figure to results/figures/ and notes in
results/figures/MANIFEST.json which experiment directory produced it.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import time
from dataclasses import dataclass

from testbed.errors import TestbedError
from testbed.net import RESULTS, Testbed
from testbed.runconfig import RunConfig
from testbed.workload import Flow, WorkloadRun

FIGURES = os.path.join(RESULTS, "figures")


def require_root(prog: str) -> None:
    if os.geteuid() != 0:
        sys.exit(f"{prog}: needs root (Mininet makes network namespaces); run it with sudo")


def stop_on_sigterm() -> None:
    """SIGTERM stops an experiment like Ctrl-C: every testbed tears down on the way out."""
    def handler(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGTERM, handler)


def experiment_dir(name: str, results: str = RESULTS) -> str:
    path = os.path.join(results, f"{name}-{time.strftime('%Y%m%d-%H%M%S')}")
    os.makedirs(path, exist_ok=True)
    return path


@dataclass
class Trial:
    config: RunConfig
    run_dir: str
    results: list
    routing_events: list
    start_wall: float


def run_trial(config: RunConfig, flows: list[Flow], duration: float, results_dir: str, app=None,
              progress=print) -> Trial:
    """Build the testbed, run the workload with the configured failures, tear everything down."""
    with Testbed(config, results_dir=results_dir) as tb:
        dest = (lambda flow: app.destination(tb.topo, flow.server)) if app is not None else None
        progress(f"  {config.name}: fabric up ({tb.run_dir})")
        workload = WorkloadRun(tb, flows, duration, dest).start()
        start_wall = time.time()
        tb.play_failures()
        results = workload.wait()
        events = tb.routing_events()
    return Trial(config, tb.run_dir, results, events, start_wall)


def record_figure(fig, exp_dir: str, name: str) -> str:
    """Save `fig` in the experiment directory and as results/figures/<name>.png (+ manifest)."""
    path = os.path.join(exp_dir, f"{name}.png")
    fig.savefig(path, dpi=130, bbox_inches="tight")
    os.makedirs(FIGURES, exist_ok=True)
    shutil.copyfile(path, os.path.join(FIGURES, f"{name}.png"))
    manifest_path = os.path.join(FIGURES, "MANIFEST.json")
    manifest = {}
    if os.path.exists(manifest_path):
        with open(manifest_path) as f:
            manifest = json.load(f)
    manifest[f"{name}.png"] = {"experiment_dir": os.path.relpath(exp_dir, RESULTS),
                               "made": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "argv": sys.argv}
    with open(manifest_path, "w") as f:
        json.dump(manifest, f, indent=2)
    return path


def write_table(df, exp_dir: str, name: str) -> str:
    path = os.path.join(exp_dir, f"{name}.csv")
    df.to_csv(path, index=False)
    return path


class ExperimentError(TestbedError):
    """An experiment could not run; the message says which trial and why."""
