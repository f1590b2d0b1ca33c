"""Remove what an interrupted run left behind, and nothing else.

    python -m testbed.cleanup [--results results] [--dry-run]

Reads every run manifest under the results directory whose status is not "clean", and for
each: kills the listed processes that still run (a pid counts only if its kernel start time
matches the recorded one, so a reused pid is never touched), deletes the listed interfaces
that still exist, removes the listed temporary directories, then marks the run "cleaned".
Nothing is found by name patterns: only what the manifests list.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import signal
import subprocess
import sys

from testbed.provenance import still_running


def clean_manifest(path: str, dry_run: bool = False) -> list[str]:
    with open(path) as f:
        data = json.load(f)
    if data.get("status") in ("clean", "cleaned"):
        return []
    done = [f"kill {pid} ({what})" for pid, started, what in data["pids"] if _ours(pid, started)]
    done += [f"delete interface {name}" for name in data["interfaces"] if os.path.exists(f"/sys/class/net/{name}")]
    done += [f"remove {d}" for d in data["dirs"] if os.path.isdir(d)]
    if dry_run:
        return done
    for pid, started, _ in data["pids"]:
        if _ours(pid, started):
            os.kill(pid, signal.SIGKILL)
    for name in data["interfaces"]:
        if os.path.exists(f"/sys/class/net/{name}"):
            subprocess.run(["ip", "link", "del", name], capture_output=True)
    for d in data["dirs"]:
        shutil.rmtree(d, ignore_errors=True)
    data["status"] = "cleaned"
    with open(path, "w") as f:
        json.dump(data, f, indent=1)
    return done


def _ours(pid: int, started) -> bool:
    return still_running(pid, started)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m testbed.cleanup", description=__doc__.split("\n\n")[0])
    p.add_argument("--results", default="results", help="results directory (default: results)")
    p.add_argument("--dry-run", action="store_true", help="say what would be removed, remove nothing")
    args = p.parse_args(argv)
    manifests = sorted(glob.glob(os.path.join(args.results, "**", "manifest.json"), recursive=True))
    total = 0
    for path in manifests:
        for line in clean_manifest(path, args.dry_run):
            print(f"{os.path.dirname(path)}: {line}")
            total += 1
    print(f"{'would remove' if args.dry_run else 'removed'} {total} leftovers from {len(manifests)} runs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
