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


# ---------------------------------------------------------------------------------------------
# Helpers shared by the experiment scripts (appended; the functions above are unchanged)

class HostTools:
    """Traffic-tool processes on a Testbed's hosts, each owned until it is stopped.

        with HostTools(tb) as tools:
            tools.start("h3", tool_argv("probe", "recv", port=7000, echo=True, log=...))
            tools.run("h1", tool_argv("probe", "send", ..., count=5))     # start, wait for the exit
            codes = tools.wait()                                         # the clients started so far

    `start` waits (bounded) for the tool's ``ready`` line; every process is recorded in the
    run's manifest; leaving the block stops whatever still runs (SIGTERM, then harder).
    """

    def __init__(self, tb):
        self.tb = tb
        self.procs: list[tuple[str, list[str], object]] = []
        tb.own(self.stop)               # stopped at teardown too, whatever ends the run

    def __enter__(self) -> "HostTools":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self, host: str, argv: list[str], ready_timeout: float = 15.0):
        """Start `argv` in `host`'s namespace and wait until it reports ready."""
        import subprocess
        from testbed.traffic import wait_ready
        proc = self.tb.host(host).popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.procs.append((host, argv, proc))
        self.tb.manifest.pid(proc.pid, f"traffic {argv[2].rsplit('.', 1)[-1]} on {host}")
        wait_ready(proc, timeout=ready_timeout)
        return proc

    def run(self, host: str, argv: list[str], timeout: float = 30.0) -> int | None:
        """Start `argv` on `host` and wait for it to exit (bounded); its exit status."""
        return self.wait([self.start(host, argv)], timeout)[0]

    def wait(self, procs=None, timeout: float = 30.0) -> list:
        """Wait for `procs` (default: every process started) to exit, within `timeout` in
        total; exit statuses (None: still running when the time was up)."""
        import subprocess
        procs = [p for _, _, p in self.procs] if procs is None else procs
        deadline = time.monotonic() + timeout
        codes = []
        for proc in procs:
            try:
                codes.append(proc.wait(timeout=max(0.05, deadline - time.monotonic())))
            except subprocess.TimeoutExpired:
                codes.append(None)
        return codes

    def stop(self) -> None:
        """Stop every process still running (SIGTERM first: the tools flush their logs)."""
        from testbed.capture import stop_process
        for _, _, proc in reversed(self.procs):
            if proc.poll() is None:
                stop_process(proc)
            if proc.stderr is not None and not proc.stderr.closed:
                proc.stderr.close()


def in_process_run(exp_dir: str, name: str, config: dict, measured: str):
    """A run directory for a trial that needs no Mininet (the interpreter or the in-process
    fabric driven from this process): provenance.json is written first, with `config` and a
    `measured` note saying how; the caller writes its results into the directory, and
    `finish_run` records the end. Returns the run directory."""
    from testbed import provenance
    run_dir = os.path.join(exp_dir, f"{time.strftime('%Y%m%d-%H%M%S')}-{name}-{os.getpid()}")
    os.makedirs(run_dir, exist_ok=True)
    provenance.write_provenance(run_dir, {"name": name, **config},
                                {"measured": measured, "switches": {"name": "bundled",
                                                                    "implementation": "testbed.v1model (in-process)"}})
    return run_dir


def finish_run(run_dir: str, status: str = "ok", extra: dict | None = None) -> None:
    """Record the end of an in-process trial in its provenance.json."""
    from testbed import provenance
    provenance.finish(run_dir, status, extra)


def save_json(run_dir: str, name: str, data) -> str:
    """Write `data` as <run_dir>/<name>.json (what analysis reads back, with the run)."""
    path = os.path.join(run_dir, f"{name}.json")
    with open(path, "w") as f:
        json.dump(data, f, indent=1, default=str)
    return path


def elapsed_note(start: float) -> str:
    """'12.3 s' since `start` (time.monotonic())."""
    return f"{time.monotonic() - start:.1f} s"


