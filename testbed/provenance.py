"""What a run writes about itself, and what it created.

`write_provenance` records, before anything starts, the configuration, the git commit (and
whether the tree was dirty), tool and kernel versions, and the targets used; `finish` adds the
end time. `Manifest` lists every process, interface and directory the run creates, as they are
created, so that `python -m testbed.cleanup` can remove exactly those (and nothing else) if the
run could not clean up after itself (a power cut, kill -9).
"""
from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(argv: list[str]) -> str:
    try:
        res = subprocess.run(argv, capture_output=True, text=True, timeout=10, cwd=REPO)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return (res.stdout or res.stderr).strip()


def git_state() -> dict:
    commit = _run(["git", "rev-parse", "HEAD"])
    dirty = bool(_run(["git", "status", "--porcelain", "--untracked-files=no"]))
    return {"commit": commit or None, "dirty": dirty}


def tool_versions() -> dict:
    import pandas
    import scapy
    out = {"python": sys.version.split()[0], "kernel": platform.release(), "scapy": scapy.__version__,
           "pandas": pandas.__version__}
    try:
        import mininet.net
        out["mininet"] = getattr(mininet.net, "VERSION", "unknown")
    except ImportError:
        out["mininet"] = None
    out["tcpdump"] = _run(["tcpdump", "--version"]).splitlines()[0] if _run(["tcpdump", "--version"]) else None
    return out


def write_provenance(run_dir: str, config: dict, targets: dict) -> dict:
    data = {"started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "started_unix": time.time(),
            "host": platform.node(), "argv": sys.argv, "config": config, "git": git_state(),
            "tools": tool_versions(), "targets": targets}
    with open(os.path.join(run_dir, "provenance.json"), "w") as f:
        json.dump(data, f, indent=2, default=str)
    return data


def finish(run_dir: str, status: str, extra: dict | None = None) -> None:
    path = os.path.join(run_dir, "provenance.json")
    with open(path) as f:
        data = json.load(f)
    data.update({"finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "status": status})
    data.update(extra or {})
    with open(path, "w") as f:
        json.dump(data, f, indent=2, default=str)


def process_start_time(pid: int) -> int | None:
    """The kernel's start time of `pid` (clock ticks since boot): tells pid reuse apart."""
    fields = _stat_fields(pid)
    return int(fields[19]) if fields else None


def still_running(pid: int, started: int | None) -> bool:
    """True if `pid` is the process that started at `started` and has not exited (a zombie,
    exited but not yet reaped, does not count)."""
    fields = _stat_fields(pid)
    return bool(fields) and started is not None and int(fields[19]) == started and fields[0] != b"Z"


def _stat_fields(pid: int) -> list | None:
    """Fields of /proc/<pid>/stat after the command name (state first), or None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    return stat[stat.rindex(b")") + 2:].split()


class Manifest:
    """The resources a run created, kept on disk as they are created."""

    def __init__(self, run_dir: str, run_id: str):
        self.path = os.path.join(run_dir, "manifest.json")
        self.data = {"run_id": run_id, "status": "running", "pids": [], "interfaces": [], "dirs": []}
        self.lock = threading.Lock()
        self._save()

    def pid(self, pid: int, what: str) -> None:
        with self.lock:
            self.data["pids"].append([pid, process_start_time(pid), what])
            self._save()

    def interface(self, name: str) -> None:
        with self.lock:
            if name not in self.data["interfaces"]:
                self.data["interfaces"].append(name)
                self._save()

    def directory(self, path: str) -> None:
        with self.lock:
            self.data["dirs"].append(path)
            self._save()

    def running(self, skip: tuple = ()) -> list[tuple[int, str]]:
        """Listed processes still alive (same pid and start time), except those whose
        description starts with one of `skip`."""
        with self.lock:
            pids = list(self.data["pids"])
        return [(pid, what) for pid, started, what in pids
                if not what.startswith(skip) and still_running(pid, started)]

    def close(self, status: str = "clean") -> None:
        with self.lock:
            self.data["status"] = status
            self._save()

    def _save(self) -> None:
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.data, f, indent=1)
        os.replace(tmp, self.path)
