"""Traffic tools that run inside test hosts as separate processes, and the harness side of them.

Tools (each ``python -m testbed.traffic.<tool> <mode> --help``):

- `testbed.traffic.probe`: UDP probe streams (``send``, ``recv``; ``--echo`` for RTT).
- `testbed.traffic.tcpflow`: long-lived, verified TCP byte streams (``server``, ``client``).
- `testbed.traffic.shortflows`: many short TCP flows with empirical size distributions and
  Poisson arrivals (``server``, ``client``).

The tools import only the standard library. Each writes a CSV log with a JSON metadata comment
and a JSON summary comment (format in `testbed.traffic.runtime`), prints ``ready {...}`` on
stderr once set up, and exits cleanly on SIGTERM/SIGINT after flushing its log.

Harness helpers here: `tool_argv` builds a command line, `wait_ready` waits (bounded) for the
``ready`` line of a started process, `read_log` parses a log file.
"""
from __future__ import annotations

import csv
import json
import os
import re
import selectors
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from testbed.errors import TestbedError

__all__ = ["TOOLS", "ToolLog", "tool_argv", "wait_ready", "read_log", "parse_status_lines"]

TOOLS = {
    "probe": "testbed.traffic.probe",
    "tcpflow": "testbed.traffic.tcpflow",
    "shortflows": "testbed.traffic.shortflows",
}


def tool_argv(tool: str, mode: str, python: str | None = None, **options: Any) -> list[str]:
    """Command line running `tool` in `mode` with ``--option value`` pairs.

    Option names use underscores (``flow_timeout=2`` -> ``--flow-timeout 2``); True adds a bare
    flag, False/None omit the option. `python` defaults to this interpreter, which is visible
    inside Mininet hosts and ``ip netns exec`` alike.
    """
    if tool not in TOOLS:
        raise TestbedError(f"tool: unknown traffic tool {tool!r} (known: {', '.join(TOOLS)})")
    argv = [python or sys.executable, "-m", TOOLS[tool], mode]
    for name, value in options.items():
        flag = "--" + name.replace("_", "-")
        if value is True:
            argv.append(flag)
        elif value is not None and value is not False:
            argv += [flag, str(value)]
    return argv


def wait_ready(proc: subprocess.Popen, timeout: float = 10.0, poll: float = 0.05) -> dict:
    """Wait until `proc` prints its ``ready {...}`` line on stderr (a pipe) and return it.

    Raises TestbedError if the process exits first or `timeout` passes; the message carries
    what the process wrote on stderr.
    """
    if proc.stderr is None:
        raise TestbedError("wait_ready: the process was not started with stderr=PIPE")
    seen = b""
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stderr.fileno(), selectors.EVENT_READ)
        while (ready := _ready_line(seen)) is None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TestbedError(f"wait_ready: pid {proc.pid} not ready after {timeout} s; "
                                   f"stderr so far: {seen.decode(errors='replace')!r}")
            if sel.select(timeout=min(poll, left)):
                chunk = os.read(proc.stderr.fileno(), 65536)
                seen += chunk
                if chunk:
                    continue
                _reap(proc, left)  # EOF on stderr: the process is exiting
            if proc.poll() is not None:
                raise TestbedError(f"wait_ready: pid {proc.pid} exited with {proc.returncode} "
                                   f"before it was ready; stderr: "
                                   f"{seen.decode(errors='replace')!r}")
    return ready


def _reap(proc: subprocess.Popen, timeout: float) -> None:
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        pass


def _ready_line(text: bytes) -> dict | None:
    for line in text.decode(errors="replace").splitlines(keepends=True):
        if line.startswith("ready ") and line.endswith("\n"):
            return json.loads(line[len("ready "):])
    return None


def parse_status_lines(text: str) -> dict[str, list[dict]]:
    """Status lines (``ready {...}``, ``summary {...}``, ``error {...}``) found in `text`,
    grouped by kind; other lines (e.g. tracebacks) are ignored."""
    found: dict[str, list[dict]] = {}
    for line in text.splitlines():
        kind, _, rest = line.partition(" ")
        if kind in ("ready", "summary", "error") and rest.startswith("{"):
            try:
                found.setdefault(kind, []).append(json.loads(rest))
            except json.JSONDecodeError:
                continue
    return found


@dataclass
class ToolLog:
    """A parsed tool log: metadata, field names, rows (dicts) and the summary (None if the
    tool died before writing it)."""

    meta: dict
    fields: list[str]
    rows: list[dict] = field(default_factory=list)
    summary: dict | None = None

    def column(self, name: str) -> list:
        """All values of one field, in row order."""
        if name not in self.fields:
            raise TestbedError(f"log: no field {name!r} (fields: {', '.join(self.fields)})")
        return [row[name] for row in self.rows]


_INT_RE = re.compile(r"^-?\d+$")


def _cell(text: str) -> Any:
    if text == "":
        return None
    if _INT_RE.match(text):
        return int(text)
    try:
        return float(text)
    except ValueError:
        return text


def read_log(path: str) -> ToolLog:
    """Parse a tool log file; cells become int, float, str or None (empty)."""
    with open(path, encoding="utf-8") as f:
        first = f.readline()
        prefix = "# testbed-log "
        if not first.startswith(prefix):
            raise TestbedError(f"log {path}: not a testbed tool log (first line {first!r})")
        log = ToolLog(meta=json.loads(first[len(prefix):]), fields=[])
        data_lines = []
        for line in f:
            if line.startswith("# summary "):
                log.summary = json.loads(line[len("# summary "):])
            elif not line.startswith("#"):
                data_lines.append(line)
    reader = csv.reader(data_lines)
    log.fields = next(reader, [])
    log.rows = [dict(zip(log.fields, map(_cell, row))) for row in reader]
    return log
